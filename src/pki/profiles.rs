//! Wi-Fi profiles for the owner's device: a Windows WLAN profile (`netsh wlan add profile`)
//! and an Apple configuration profile (`.mobileconfig`), both WPA2-Enterprise with EAP-TLS
//! and the server's name and CA pinned, so that a device never hands its identity to a rogue
//! access point. Every value is XML-escaped.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::Engine as _;
use uuid::Uuid;

/// What both profiles configure.
#[derive(Debug, Clone)]
pub struct ProfileSettings<'a> {
    /// The network (`wifi.ssid`).
    pub ssid: &'a str,
    /// The RADIUS server's certificate name (`eap.server_name`).
    pub server_name: &'a str,
    /// Organization, shown by the device.
    pub organization: &'a str,
    /// The CA's name, shown by the device.
    pub ca_name: &'a str,
    /// The CA certificate, DER.
    pub ca_der: &'a [u8],
    /// During a CA rollover, the previous CA (DER): trusted for the server as well, since the
    /// server certificate stays the previous CA's until it is retired.
    pub previous_ca_der: Option<&'a [u8]>,
}

/// `&`, `<`, `>`, `"` and `'` as entities; control characters other than tab and newline
/// (not allowed in XML 1.0) dropped.
pub fn xml_escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| {
        matches!(c, '&' | '<' | '>' | '"' | '\'') || (c.is_control() && c != '\t' && c != '\n')
    }) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The SHA-1 thumbprint of a certificate as Windows writes it in `TrustedRootCA`: lowercase
/// hex bytes separated by spaces.
pub fn sha1_thumbprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    let mut out = String::with_capacity(60);
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A Windows WLAN profile: WPA2-Enterprise (also joins a WPA2/WPA3 transition network), AES,
/// 802.1X with EAP-TLS (EapHostConfig type 13) from the user's certificate store; the server
/// is validated by name and by the CA's thumbprint, without asking the user.
pub fn windows_wlan_profile(s: &ProfileSettings<'_>) -> String {
    let ssid_hex: String = s.ssid.bytes().map(|b| format!("{b:02X}")).collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<WLANProfile xmlns="http://www.microsoft.com/networking/WLAN/profile/v1">
  <name>{ssid}</name>
  <SSIDConfig>
    <SSID>
      <hex>{ssid_hex}</hex>
      <name>{ssid}</name>
    </SSID>
    <nonBroadcast>false</nonBroadcast>
  </SSIDConfig>
  <connectionType>ESS</connectionType>
  <connectionMode>auto</connectionMode>
  <MSM>
    <security>
      <authEncryption>
        <authentication>WPA2</authentication>
        <encryption>AES</encryption>
        <useOneX>true</useOneX>
      </authEncryption>
      <OneX xmlns="http://www.microsoft.com/networking/OneX/v1">
        <authMode>user</authMode>
        <EAPConfig>
          <EapHostConfig xmlns="http://www.microsoft.com/provisioning/EapHostConfig">
            <EapMethod>
              <Type xmlns="http://www.microsoft.com/provisioning/EapCommon">13</Type>
              <VendorId xmlns="http://www.microsoft.com/provisioning/EapCommon">0</VendorId>
              <VendorType xmlns="http://www.microsoft.com/provisioning/EapCommon">0</VendorType>
              <AuthorId xmlns="http://www.microsoft.com/provisioning/EapCommon">0</AuthorId>
            </EapMethod>
            <Config xmlns="http://www.microsoft.com/provisioning/EapHostConfig">
              <Eap xmlns="http://www.microsoft.com/provisioning/BaseEapConnectionPropertiesV1">
                <Type>13</Type>
                <EapType xmlns="http://www.microsoft.com/provisioning/EapTlsConnectionPropertiesV1">
                  <CredentialsSource>
                    <CertificateStore>
                      <SimpleCertSelection>true</SimpleCertSelection>
                    </CertificateStore>
                  </CredentialsSource>
                  <ServerValidation>
                    <DisableUserPromptForServerValidation>true</DisableUserPromptForServerValidation>
                    <ServerNames>{server}</ServerNames>
                    <TrustedRootCA>{thumbprint}</TrustedRootCA>{previous}
                  </ServerValidation>
                  <DifferentUsername>false</DifferentUsername>
                  <PerformServerValidation xmlns="http://www.microsoft.com/provisioning/EapTlsConnectionPropertiesV2">true</PerformServerValidation>
                  <AcceptServerName xmlns="http://www.microsoft.com/provisioning/EapTlsConnectionPropertiesV2">true</AcceptServerName>
                </EapType>
              </Eap>
            </Config>
          </EapHostConfig>
        </EAPConfig>
      </OneX>
    </security>
  </MSM>
</WLANProfile>
"#,
        ssid = xml_escape(s.ssid),
        server = xml_escape(s.server_name),
        thumbprint = sha1_thumbprint(s.ca_der),
        previous = s
            .previous_ca_der
            .map(|der| format!(
                "\n                    <TrustedRootCA>{}</TrustedRootCA>",
                sha1_thumbprint(der)
            ))
            .unwrap_or_default(),
    )
}

/// An Apple configuration profile with three payloads: the CA (`com.apple.security.root`),
/// the device identity (`com.apple.security.pkcs12`, the bundle as `<data>`; the device asks
/// for its password, which the profile does not hold) and the network
/// (`com.apple.wifi.managed`: WPA2, EAP-TLS, the server name and the CA as its trust
/// anchor, the identity by `PayloadCertificateUUID`). Identifiers derive from the device id,
/// so installing a newer profile replaces the older one.
pub fn apple_mobileconfig(
    s: &ProfileSettings<'_>,
    device_id: Uuid,
    device_label: &str,
    p12_name: &str,
    p12: &[u8],
) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let id = format!("poortwachter.wifi.{device_id}");
    let (profile_uuid, ca_uuid, identity_uuid, wifi_uuid) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let e = xml_escape;
    let previous = s.previous_ca_der.map(|der| (der, Uuid::new_v4()));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>PayloadCertificateFileName</key>
      <string>ca.cer</string>
      <key>PayloadContent</key>
      <data>{ca_b64}</data>
      <key>PayloadDescription</key>
      <string>The CA of the Wi-Fi server</string>
      <key>PayloadDisplayName</key>
      <string>{ca_name}</string>
      <key>PayloadIdentifier</key>
      <string>{id}.ca</string>
      <key>PayloadType</key>
      <string>com.apple.security.root</string>
      <key>PayloadUUID</key>
      <string>{ca_uuid}</string>
      <key>PayloadVersion</key>
      <integer>1</integer>
    </dict>{previous_payload}
    <dict>
      <key>PayloadCertificateFileName</key>
      <string>{p12_name}</string>
      <key>PayloadContent</key>
      <data>{p12_b64}</data>
      <key>PayloadDescription</key>
      <string>The certificate of this device</string>
      <key>PayloadDisplayName</key>
      <string>{label}</string>
      <key>PayloadIdentifier</key>
      <string>{id}.identity</string>
      <key>PayloadType</key>
      <string>com.apple.security.pkcs12</string>
      <key>PayloadUUID</key>
      <string>{identity_uuid}</string>
      <key>PayloadVersion</key>
      <integer>1</integer>
    </dict>
    <dict>
      <key>AutoJoin</key>
      <true/>
      <key>EAPClientConfiguration</key>
      <dict>
        <key>AcceptEAPTypes</key>
        <array>
          <integer>13</integer>
        </array>
        <key>PayloadCertificateAnchorUUID</key>
        <array>
          <string>{ca_uuid}</string>{previous_anchor}
        </array>
        <key>TLSTrustedServerNames</key>
        <array>
          <string>{server}</string>
        </array>
      </dict>
      <key>EncryptionType</key>
      <string>WPA2</string>
      <key>HIDDEN_NETWORK</key>
      <false/>
      <key>PayloadCertificateUUID</key>
      <string>{identity_uuid}</string>
      <key>PayloadDescription</key>
      <string>Wi-Fi {ssid}</string>
      <key>PayloadDisplayName</key>
      <string>Wi-Fi {ssid}</string>
      <key>PayloadIdentifier</key>
      <string>{id}.wifi</string>
      <key>PayloadType</key>
      <string>com.apple.wifi.managed</string>
      <key>PayloadUUID</key>
      <string>{wifi_uuid}</string>
      <key>PayloadVersion</key>
      <integer>1</integer>
      <key>SSID_STR</key>
      <string>{ssid}</string>
    </dict>
  </array>
  <key>PayloadDescription</key>
  <string>Wi-Fi {ssid} with the certificate of {label}</string>
  <key>PayloadDisplayName</key>
  <string>Wi-Fi {ssid}</string>
  <key>PayloadIdentifier</key>
  <string>{id}</string>
  <key>PayloadOrganization</key>
  <string>{organization}</string>
  <key>PayloadRemovalDisallowed</key>
  <false/>
  <key>PayloadType</key>
  <string>Configuration</string>
  <key>PayloadUUID</key>
  <string>{profile_uuid}</string>
  <key>PayloadVersion</key>
  <integer>1</integer>
</dict>
</plist>
"#,
        previous_payload = previous
            .as_ref()
            .map(|(der, uuid)| format!(
                r#"
    <dict>
      <key>PayloadCertificateFileName</key>
      <string>ca-previous.cer</string>
      <key>PayloadContent</key>
      <data>{}</data>
      <key>PayloadDescription</key>
      <string>The previous CA of the Wi-Fi server (CA rollover)</string>
      <key>PayloadDisplayName</key>
      <string>{} (previous)</string>
      <key>PayloadIdentifier</key>
      <string>{id}.ca-previous</string>
      <key>PayloadType</key>
      <string>com.apple.security.root</string>
      <key>PayloadUUID</key>
      <string>{uuid}</string>
      <key>PayloadVersion</key>
      <integer>1</integer>
    </dict>"#,
                b64.encode(der),
                e(s.ca_name)
            ))
            .unwrap_or_default(),
        previous_anchor = previous
            .as_ref()
            .map(|(_, uuid)| format!("\n          <string>{uuid}</string>"))
            .unwrap_or_default(),
        ca_b64 = b64.encode(s.ca_der),
        p12_b64 = b64.encode(p12),
        ca_name = e(s.ca_name),
        p12_name = e(p12_name),
        label = e(device_label),
        server = e(s.server_name),
        ssid = e(s.ssid),
        organization = e(s.organization),
        id = e(&id),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small well-formedness check, for want of an XML parser among our dependencies:
    /// elements nest and close, attributes are quoted, `&` starts a known entity, no `<` in
    /// text, one root. Returns the element names in document order.
    pub(crate) fn check_xml(doc: &str) -> Result<Vec<String>, String> {
        let mut rest = doc;
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut roots = 0;
        let text_ok = |t: &str| -> Result<(), String> {
            let mut parts = t.split('&');
            parts.next();
            for p in parts {
                let ent = p.split(';').next().unwrap_or("");
                if !p.contains(';') || !matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos") {
                    return Err(format!("bad entity near `&{}`", &p[..p.len().min(10)]));
                }
            }
            if t.contains('>') && !t.trim().is_empty() {
                // `>` is allowed in text, but we escape it: its presence means a missed escape
                return Err(format!("unescaped `>` in `{t}`"));
            }
            Ok(())
        };
        while let Some(start) = rest.find('<') {
            text_ok(&rest[..start])?;
            if !stack.is_empty() || rest[..start].trim().is_empty() {
            } else {
                return Err("text outside the root".into());
            }
            rest = &rest[start..];
            if let Some(r) = rest.strip_prefix("<?") {
                let end = r.find("?>").ok_or("unterminated <?")?;
                rest = &r[end + 2..];
                continue;
            }
            if let Some(r) = rest.strip_prefix("<!DOCTYPE") {
                let end = r.find('>').ok_or("unterminated DOCTYPE")?;
                rest = &r[end + 1..];
                continue;
            }
            let end = rest.find('>').ok_or("unterminated tag")?;
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name.trim() => continue,
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let mut parts = tag.splitn(2, char::is_whitespace);
            let name = parts.next().unwrap_or("").to_string();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_-.:".contains(c))
            {
                return Err(format!("bad element name `{name}`"));
            }
            let mut attrs = parts.next().unwrap_or("").trim();
            while !attrs.is_empty() {
                let eq = attrs
                    .find('=')
                    .ok_or(format!("attribute without value in <{name}>"))?;
                let value = attrs[eq + 1..].trim_start();
                let quote = value.chars().next().filter(|q| *q == '"' || *q == '\'');
                let quote = quote.ok_or(format!("unquoted attribute in <{name}>"))?;
                let close = value[1..].find(quote).ok_or("unterminated attribute")?;
                text_ok(&value[1..1 + close])?;
                attrs = value[close + 2..].trim_start();
            }
            if stack.is_empty() {
                roots += 1;
            }
            names.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        if !rest.trim().is_empty() {
            return Err("text after the root".into());
        }
        if !stack.is_empty() || roots != 1 {
            return Err(format!("unclosed {stack:?}, {roots} roots"));
        }
        Ok(names)
    }

    fn settings<'a>(ca_der: &'a [u8]) -> ProfileSettings<'a> {
        ProfileSettings {
            ssid: "Werkplek <&> \"'",
            server_name: "radius.gemeente.test",
            organization: "Gemeente A&B",
            ca_name: "Gemeente <CA>",
            ca_der,
            previous_ca_der: None,
        }
    }

    #[test]
    fn the_checker_catches_what_it_should() {
        assert!(check_xml("<a><b x=\"1\">t</b><c/></a>").is_ok());
        assert!(check_xml("<a><b></a></b>").is_err());
        assert!(check_xml("<a>x & y</a>").is_err());
        assert!(check_xml("<a>x &amp y</a>").is_err());
        assert!(check_xml("<a>1 > 0</a>").is_err());
        assert!(check_xml("<a b=c></a>").is_err());
        assert!(check_xml("<a></a><b></b>").is_err());
        assert!(check_xml("<a>").is_err());
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("plain"), "plain");
        assert_eq!(
            xml_escape("<a href=\"x\">&'</a>\u{7}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
    }

    #[test]
    fn thumbprint_is_sha1_in_spaced_hex() {
        // SHA-1("abc"), FIPS 180-2 appendix A.1
        assert_eq!(
            sha1_thumbprint(b"abc"),
            "a9 99 3e 36 47 06 81 6a ba 3e 25 71 78 50 c2 6c 9c d0 d8 9d"
        );
    }

    #[test]
    fn windows_profile_pins_server_and_ca() {
        let ca = b"not really a certificate";
        let xml = windows_wlan_profile(&settings(ca));
        let names = check_xml(&xml).unwrap();
        assert_eq!(names[0], "WLANProfile");
        assert!(
            xml.contains("<name>Werkplek &lt;&amp;&gt; &quot;&apos;</name>"),
            "{xml}"
        );
        // the hex of the SSID bytes as they are, not escaped
        assert!(
            xml.contains("<hex>5765726B706C656B203C263E202227</hex>"),
            "{xml}"
        );
        assert!(xml.contains("<ServerNames>radius.gemeente.test</ServerNames>"));
        assert!(xml.contains(&format!(
            "<TrustedRootCA>{}</TrustedRootCA>",
            sha1_thumbprint(ca)
        )));
        assert!(xml.contains("<Type>13</Type>"));
        assert!(xml.contains("<encryption>AES</encryption>"));
    }

    #[test]
    fn apple_profile_links_its_payloads() {
        let ca = b"ca der";
        let id = Uuid::new_v4();
        let xml = apple_mobileconfig(
            &settings(ca),
            id,
            "Laptop <privé>",
            "laptop.p12",
            b"p12 bytes",
        );
        check_xml(&xml).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert!(xml.contains(&format!("<data>{}</data>", b64.encode(b"p12 bytes"))));
        assert!(xml.contains(&format!("<data>{}</data>", b64.encode(ca))));
        assert!(xml.contains("<string>Werkplek &lt;&amp;&gt; &quot;&apos;</string>"));
        assert!(xml.contains("<string>Laptop &lt;privé&gt;</string>"));
        assert!(xml.contains(&format!("<string>poortwachter.wifi.{id}</string>")));
        // the anchor is the CA payload's UUID, the identity the PKCS#12 payload's
        let uuid_after = |marker: &str| -> String {
            let at = xml.find(marker).unwrap() + marker.len();
            let rest = &xml[at..];
            let s = rest.find("<string>").unwrap() + 8;
            rest[s..s + 36].to_string()
        };
        let ca_uuid = uuid_after("<string>com.apple.security.root</string>");
        let identity_uuid = uuid_after("<string>com.apple.security.pkcs12</string>");
        assert_eq!(
            uuid_after("<key>PayloadCertificateAnchorUUID</key>"),
            ca_uuid
        );
        assert_eq!(
            uuid_after("<key>PayloadCertificateUUID</key>"),
            identity_uuid
        );
        assert_ne!(ca_uuid, identity_uuid);
        assert!(xml.contains("<integer>13</integer>"));
        assert!(xml.contains("<string>radius.gemeente.test</string>"));
        assert!(!xml.contains("Password"));
    }

    #[test]
    fn during_a_rollover_both_cas_are_trusted_for_the_server() {
        let (ca, previous) = (b"new ca der".as_slice(), b"old ca der".as_slice());
        let s = ProfileSettings {
            previous_ca_der: Some(previous),
            ..settings(ca)
        };
        let xml = windows_wlan_profile(&s);
        check_xml(&xml).unwrap();
        for der in [ca, previous] {
            assert!(xml.contains(&format!(
                "<TrustedRootCA>{}</TrustedRootCA>",
                sha1_thumbprint(der)
            )));
        }
        let xml = apple_mobileconfig(&s, Uuid::new_v4(), "Laptop", "laptop.p12", b"p12");
        check_xml(&xml).unwrap();
        assert_eq!(xml.matches("com.apple.security.root").count(), 2);
        let anchors = &xml[xml.find("PayloadCertificateAnchorUUID").unwrap()..];
        let anchors = &anchors[..anchors.find("</array>").unwrap()];
        assert_eq!(anchors.matches("<string>").count(), 2, "{anchors}");
        let b64 = base64::engine::general_purpose::STANDARD;
        assert!(xml.contains(&format!("<data>{}</data>", b64.encode(previous))));
    }
}
