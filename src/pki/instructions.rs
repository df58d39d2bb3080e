//! The instructions in a device bundle, Dutch and English: every text of them is here, one
//! function per language, with the network, the server's name and the CA's fingerprint
//! filled in, so that an employee can check what their device is told to trust.

use std::fmt::Write as _;

use super::bundle::Platform;
use crate::lang::Lang;

/// The names of the bundle's files the instructions refer to (empty: not in this bundle).
#[derive(Debug, Default, Clone)]
pub struct FileNames {
    /// The PKCS#12.
    pub p12: String,
    /// The CA, PEM.
    pub ca: String,
    /// The Windows WLAN profile.
    pub windows_profile: String,
    /// The Windows installer.
    pub windows_installer: String,
    /// The Apple profile.
    pub apple_profile: String,
    /// The NetworkManager script.
    pub linux_script: String,
}

/// What the instructions say.
#[derive(Debug)]
pub struct Facts<'a> {
    /// The network's name.
    pub ssid: &'a str,
    /// The server's certificate name (the "domain" a device checks).
    pub server_name: &'a str,
    /// The organization.
    pub organization: &'a str,
    /// The CA's name.
    pub ca_name: &'a str,
    /// SHA-256 of the CA, `AB:CD:...`.
    pub ca_sha256: String,
    /// SHA-1 of the CA as Windows shows it.
    pub ca_sha1: String,
    /// The identity to type (the device id).
    pub identity: String,
    /// The device's label.
    pub device_label: &'a str,
    /// The owner.
    pub owner: &'a str,
    /// The certificate's end, formatted.
    pub valid_until: &'a str,
    /// The files.
    pub files: &'a FileNames,
    /// Whether the Apple profile is signed.
    pub apple_signed: bool,
}

/// The instructions file's name in `lang`.
pub fn file_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Nl => "LEESMIJ.txt",
        Lang::En => "README.txt",
    }
}

/// The instructions in `lang` for `platforms`.
pub fn text(lang: Lang, f: &Facts<'_>, platforms: &[Platform]) -> String {
    let mut out = match lang {
        Lang::Nl => nl(f, platforms),
        Lang::En => en(f, platforms),
    };
    // Windows' Notepad and every other editor read CRLF; a phone shows either
    out = out.replace('\n', "\r\n");
    out
}

fn nl(f: &Facts<'_>, platforms: &[Platform]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "Wi-Fi {ssid} op uw eigen apparaat: {label}\n\
         =========================================\n\n\
         Dit pakket is van {owner} ({org}) en geldt alleen voor dit apparaat, tot {until}.\n\
         Het bestand {p12} bevat uw persoonlijke certificaat. Het eenmalige wachtwoord\n\
         staat niet in dit pakket: u zag het één keer op het scherm waar u dit pakket ophaalde.\n\
         Kwijt? Vraag een nieuw pakket aan; het oude certificaat vervalt dan.\n\
         Geef dit pakket aan niemand: wie het heeft, komt als u op het netwerk.\n\n\
         Controleer bij het instellen deze gegevens:\n\
         - Netwerk (SSID):        {ssid}\n\
         - Beveiliging:           WPA2/WPA3-Enterprise, EAP-methode TLS\n\
         - Servernaam (domein):   {server}\n\
         - CA-certificaat:        {ca_name} ({ca})\n\
         - Vingerafdruk SHA-256:  {sha256}\n\
         - Identiteit:            {identity}\n\
         Vraagt uw apparaat om een ander servercertificaat te vertrouwen, stop dan en bel\n\
         de servicedesk: dan is het niet ons netwerk.\n",
        ssid = f.ssid,
        label = f.device_label,
        owner = f.owner,
        org = f.organization,
        until = f.valid_until,
        p12 = f.files.p12,
        server = f.server_name,
        ca_name = f.ca_name,
        ca = f.files.ca,
        sha256 = f.ca_sha256,
        identity = f.identity,
    );
    for p in platforms {
        s.push('\n');
        match p {
            Platform::Windows => {
                let _ = write!(
                    s,
                    "Windows 10 en 11\n----------------\n\
                     1. Pak het pakket uit in een map (niet openen vanuit het zip-bestand).\n\
                     2. Dubbelklik {installer}. Windows vraagt of u de certificeringsinstantie\n   \
                        {ca_name} vertrouwt: controleer de vingerafdruk (SHA-1) {sha1} en kies Ja.\n\
                     3. Typ het eenmalige wachtwoord als daarom gevraagd wordt.\n\
                     4. Het profiel {ssid} wordt toegevoegd en Windows maakt verbinding.\n\
                     Zonder het script: dubbelklik {ca} en installeer het bij de gebruiker onder\n\
                     'Vertrouwde basiscertificeringsinstanties'; dubbelklik {p12} (wachtwoord); en\n\
                     voer uit: netsh wlan add profile filename=\"{wlan}\" user=current\n",
                    installer = f.files.windows_installer,
                    ca_name = f.ca_name,
                    sha1 = f.ca_sha1,
                    ssid = f.ssid,
                    ca = f.files.ca,
                    p12 = f.files.p12,
                    wlan = f.files.windows_profile,
                );
            }
            Platform::Apple => {
                let _ = write!(
                    s,
                    "macOS, iPhone en iPad\n---------------------\n\
                     1. Open {profile} (op iPhone/iPad: via Bestanden of AirDrop, dan\n   \
                        Instellingen > Profiel gedownload; op de Mac: Systeeminstellingen >\n   \
                        Privacy en beveiliging > Profielen).\n\
                     2. {signed}\n\
                     3. Kies Installeer en typ het eenmalige wachtwoord als daarom gevraagd wordt.\n\
                     4. Uw apparaat maakt vanzelf verbinding met {ssid}.\n",
                    profile = f.files.apple_profile,
                    signed = if f.apple_signed {
                        "Het profiel is ondertekend door de gemeente."
                    } else {
                        "Het profiel is niet ondertekend: controleer de gegevens hierboven."
                    },
                    ssid = f.ssid,
                );
            }
            Platform::Android => {
                let _ = write!(
                    s,
                    "Android 11 en nieuwer\n---------------------\n\
                     1. Zet {p12} op de telefoon (bijvoorbeeld via Downloads).\n\
                     2. Instellingen > Beveiliging (en privacy) > Meer beveiligingsinstellingen >\n   \
                        Versleuteling en inloggegevens > Een certificaat installeren >\n   \
                        Wifi-certificaat; kies {p12} en typ het eenmalige wachtwoord. Geef het de\n   \
                        naam {ssid}.\n\
                     3. Wifi > {ssid}, en vul in:\n   \
                        EAP-methode: TLS\n   \
                        CA-certificaat: {ssid} (het zojuist geïnstalleerde)\n   \
                        Online certificaatstatus: Niet valideren\n   \
                        Domein: {server}\n   \
                        Gebruikerscertificaat: {ssid}\n   \
                        Identiteit: {identity}\n\
                     4. Kies Verbinden.\n",
                    p12 = f.files.p12,
                    ssid = f.ssid,
                    server = f.server_name,
                    identity = f.identity,
                );
            }
            Platform::Linux => {
                let _ = write!(
                    s,
                    "Linux (NetworkManager)\n----------------------\n\
                     1. Pak het pakket uit en voer in die map uit: sh ./{script}\n\
                     2. Verbind met {ssid}; typ het eenmalige wachtwoord als de sleutel\n   \
                        daarom vraagt.\n\
                     Zelf instellen: Wi-Fi-beveiliging WPA & WPA2 Enterprise, authenticatie TLS,\n\
                     identiteit {identity}, domein {server}, CA-certificaat {ca},\n\
                     gebruikerscertificaat en privésleutel {p12}.\n",
                    script = f.files.linux_script,
                    ssid = f.ssid,
                    identity = f.identity,
                    server = f.server_name,
                    ca = f.files.ca,
                    p12 = f.files.p12,
                );
            }
        }
    }
    s.push_str(
        "\nVerbonden? Dan bereikt u alleen de virtuele werkplek. Lukt het niet, bel de\n\
         servicedesk en noem de naam van dit apparaat en waar u bent.\n",
    );
    s
}

fn en(f: &Facts<'_>, platforms: &[Platform]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "Wi-Fi {ssid} on your own device: {label}\n\
         ======================================\n\n\
         This bundle belongs to {owner} ({org}) and is for this device only, until {until}.\n\
         The file {p12} holds your personal certificate. The one-time password is not in\n\
         this bundle: you saw it once, on the screen where you downloaded it.\n\
         Lost it? Ask for a new bundle; the old certificate then stops working.\n\
         Give this bundle to no one: whoever has it is you on the network.\n\n\
         Check these details while setting up:\n\
         - Network (SSID):        {ssid}\n\
         - Security:              WPA2/WPA3-Enterprise, EAP method TLS\n\
         - Server name (domain):  {server}\n\
         - CA certificate:        {ca_name} ({ca})\n\
         - SHA-256 fingerprint:   {sha256}\n\
         - Identity:              {identity}\n\
         If your device asks you to trust another server certificate, stop and call the\n\
         service desk: then it is not our network.\n",
        ssid = f.ssid,
        label = f.device_label,
        owner = f.owner,
        org = f.organization,
        until = f.valid_until,
        p12 = f.files.p12,
        server = f.server_name,
        ca_name = f.ca_name,
        ca = f.files.ca,
        sha256 = f.ca_sha256,
        identity = f.identity,
    );
    for p in platforms {
        s.push('\n');
        match p {
            Platform::Windows => {
                let _ = write!(
                    s,
                    "Windows 10 and 11\n-----------------\n\
                     1. Extract the bundle into a folder (do not run it from inside the zip file).\n\
                     2. Double-click {installer}. Windows asks whether to trust the certificate\n   \
                        authority {ca_name}: check its (SHA-1) thumbprint {sha1} and choose Yes.\n\
                     3. Type the one-time password when asked.\n\
                     4. The profile {ssid} is added and Windows connects.\n\
                     Without the script: double-click {ca} and install it for the current user under\n\
                     'Trusted Root Certification Authorities'; double-click {p12} (password); and\n\
                     run: netsh wlan add profile filename=\"{wlan}\" user=current\n",
                    installer = f.files.windows_installer,
                    ca_name = f.ca_name,
                    sha1 = f.ca_sha1,
                    ssid = f.ssid,
                    ca = f.files.ca,
                    p12 = f.files.p12,
                    wlan = f.files.windows_profile,
                );
            }
            Platform::Apple => {
                let _ = write!(
                    s,
                    "macOS, iPhone and iPad\n----------------------\n\
                     1. Open {profile} (on iPhone/iPad: from Files or AirDrop, then Settings >\n   \
                        Profile Downloaded; on a Mac: System Settings > Privacy & Security >\n   \
                        Profiles).\n\
                     2. {signed}\n\
                     3. Choose Install and type the one-time password when asked.\n\
                     4. Your device joins {ssid} by itself.\n",
                    profile = f.files.apple_profile,
                    signed = if f.apple_signed {
                        "The profile is signed by the municipality."
                    } else {
                        "The profile is not signed: check the details above."
                    },
                    ssid = f.ssid,
                );
            }
            Platform::Android => {
                let _ = write!(
                    s,
                    "Android 11 and later\n--------------------\n\
                     1. Put {p12} on the phone (e.g. in Downloads).\n\
                     2. Settings > Security (and privacy) > More security settings > Encryption &\n   \
                        credentials > Install a certificate > Wi-Fi certificate; choose {p12}\n   \
                        and type the one-time password. Name it {ssid}.\n\
                     3. Wi-Fi > {ssid}, and fill in:\n   \
                        EAP method: TLS\n   \
                        CA certificate: {ssid} (the one just installed)\n   \
                        Online certificate status: Do not validate\n   \
                        Domain: {server}\n   \
                        User certificate: {ssid}\n   \
                        Identity: {identity}\n\
                     4. Choose Connect.\n",
                    p12 = f.files.p12,
                    ssid = f.ssid,
                    server = f.server_name,
                    identity = f.identity,
                );
            }
            Platform::Linux => {
                let _ = write!(
                    s,
                    "Linux (NetworkManager)\n----------------------\n\
                     1. Extract the bundle and, in that folder, run: sh ./{script}\n\
                     2. Connect to {ssid}; type the one-time password when the key asks for it.\n\
                     By hand: Wi-Fi security WPA & WPA2 Enterprise, authentication TLS, identity\n\
                     {identity}, domain {server}, CA certificate {ca}, user certificate and\n\
                     private key {p12}.\n",
                    script = f.files.linux_script,
                    ssid = f.ssid,
                    identity = f.identity,
                    server = f.server_name,
                    ca = f.files.ca,
                    p12 = f.files.p12,
                );
            }
        }
    }
    s.push_str(
        "\nConnected? Then only the virtual workspace is reachable. If it does not work, call\n\
         the service desk with this device's name and where you are.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(files: &FileNames) -> Facts<'_> {
        Facts {
            ssid: "Gemeente-Werkplek",
            server_name: "radius.gemeente.example",
            organization: "Gemeente",
            ca_name: "Gemeente CA",
            ca_sha256: "AB:CD".into(),
            ca_sha1: "ab cd".into(),
            identity: "0000-id".into(),
            device_label: "Laptop",
            owner: "tim",
            valid_until: "2027-12-01",
            files,
            apple_signed: true,
        }
    }

    #[test]
    fn both_languages_fill_in_the_facts_for_each_platform() {
        let files = FileNames {
            p12: "laptop.p12".into(),
            ca: "ca.pem".into(),
            windows_profile: "laptop-wlan.xml".into(),
            windows_installer: "laptop-installeren.cmd".into(),
            apple_profile: "laptop.mobileconfig".into(),
            linux_script: "laptop-networkmanager.sh".into(),
        };
        let f = facts(&files);
        for lang in Lang::ALL {
            let t = text(lang, &f, &Platform::ALL);
            for needle in [
                "Gemeente-Werkplek",
                "radius.gemeente.example",
                "AB:CD",
                "ab cd",
                "0000-id",
                "laptop-installeren.cmd",
                "laptop.mobileconfig",
                "laptop-networkmanager.sh",
                "Android",
            ] {
                assert!(t.contains(needle), "{lang}: no {needle}");
            }
            assert!(!t.contains("{"), "{lang}: an unfilled placeholder");
            assert!(t.split('\n').all(|l| l.ends_with('\r') || l.is_empty()));
        }
        assert!(text(Lang::Nl, &f, &[Platform::Windows]).contains("eenmalige wachtwoord"));
        assert!(text(Lang::En, &f, &[Platform::Windows]).contains("one-time password"));
        assert!(!text(Lang::En, &f, &[Platform::Windows]).contains("iPhone"));
    }
}
