//! The onboarding CA: creates the CA and server certificates, issues device certificates and
//! what their owners install (PKCS#12, Wi-Fi profiles), and exports the CRL.
