//! Every text of the console and the portal, one place per language: [`NL`] (the default)
//! and [`EN`]. A text missing in one language does not compile.

use crate::lang::Lang;

/// The texts of one language.
#[derive(Debug)]
pub struct Texts {
    /// `nl` or `en`.
    pub lang: Lang,
    /// The other language's name, in that language (the switch).
    pub other_language: &'static str,
    /// The console's name.
    pub console: &'static str,
    /// The portal's name.
    pub portal: &'static str,
    /// Portal.
    pub my_devices: &'static str,
    /// Portal.
    pub portal_login_intro: &'static str,
    /// Portal.
    pub directory_down: &'static str,
    /// Portal.
    pub not_an_owner: &'static str,
    /// Portal.
    pub access_ends: &'static str,
    /// Portal.
    pub register_this: &'static str,
    /// Portal.
    pub no_devices: &'static str,
    /// Portal.
    pub new_certificate: &'static str,
    /// Portal.
    pub mark_lost_own: &'static str,
    /// Portal.
    pub operating_system: &'static str,
    /// Portal.
    pub register_intro: &'static str,
    /// Portal.
    pub label_example: &'static str,
    /// Portal.
    pub mac_found: &'static str,
    /// Portal.
    pub mac_help_title: &'static str,
    /// Portal.
    pub mac_help_windows: &'static str,
    /// Portal.
    pub mac_help_apple: &'static str,
    /// Portal.
    pub mac_help_android: &'static str,
    /// Portal.
    pub mac_help_linux: &'static str,
    /// Portal.
    pub register_button: &'static str,
    /// Portal.
    pub choose_system: &'static str,
    /// Portal.
    pub password_once_employee: &'static str,
    /// Portal.
    pub reconnect: &'static str,
    /// Portal.
    pub lost_confirm: &'static str,
    /// Skip link.
    pub skip_to_content: &'static str,
    /// Navigation.
    pub nav_dashboard: &'static str,
    /// Navigation.
    pub nav_search: &'static str,
    /// Navigation.
    pub nav_refusals: &'static str,
    /// Navigation.
    pub nav_audit: &'static str,
    /// Navigation.
    pub logout: &'static str,
    /// "Logged in as".
    pub logged_in_as: &'static str,
    /// Role names.
    pub role_admin: &'static str,
    /// Role names.
    pub role_helpdesk: &'static str,
    /// Role names.
    pub role_employee: &'static str,
    /// Login page.
    pub login_title: &'static str,
    /// Login page.
    pub username: &'static str,
    /// Login page.
    pub password: &'static str,
    /// Login page.
    pub login_button: &'static str,
    /// Login failed.
    pub login_failed: &'static str,
    /// Login locked.
    pub login_locked: &'static str,
    /// Session ended.
    pub session_ended: &'static str,
    /// Search page.
    pub search_title: &'static str,
    /// Search field label.
    pub search_label: &'static str,
    /// Search button.
    pub search_button: &'static str,
    /// Nothing found.
    pub nothing_found: &'static str,
    /// Headings.
    pub owners: &'static str,
    /// Headings.
    pub devices: &'static str,
    /// Headings.
    pub certificates: &'static str,
    /// Headings.
    pub sessions: &'static str,
    /// Headings.
    pub why_timeline: &'static str,
    /// Field names.
    pub name: &'static str,
    /// Field names.
    pub email: &'static str,
    /// Field names.
    pub department: &'static str,
    /// Field names.
    pub role: &'static str,
    /// Field names.
    pub contract_until: &'static str,
    /// Field names.
    pub status: &'static str,
    /// Field names.
    pub source: &'static str,
    /// Field names.
    pub label: &'static str,
    /// Field names.
    pub kind: &'static str,
    /// Field names.
    pub mac: &'static str,
    /// Field names.
    pub compliance: &'static str,
    /// Field names.
    pub certificate_until: &'static str,
    /// Field names.
    pub time: &'static str,
    /// Field names.
    pub access_point: &'static str,
    /// Field names.
    pub ssid: &'static str,
    /// Field names.
    pub reason: &'static str,
    /// Field names.
    pub outcome: &'static str,
    /// Field names.
    pub owner: &'static str,
    /// Field names.
    pub started: &'static str,
    /// Field names.
    pub ended: &'static str,
    /// Field names.
    pub ip_address: &'static str,
    /// Field names.
    pub serial: &'static str,
    /// Field names.
    pub valid_from: &'static str,
    /// Field names.
    pub issued_by: &'static str,
    /// Field names.
    pub actor: &'static str,
    /// Field names.
    pub action: &'static str,
    /// Field names.
    pub target: &'static str,
    /// Status words.
    pub active: &'static str,
    /// Status words.
    pub disabled: &'static str,
    /// Status words.
    pub lost: &'static str,
    /// Status words.
    pub revoked: &'static str,
    /// Status words.
    pub current: &'static str,
    /// Status words.
    pub superseded: &'static str,
    /// Status words.
    pub still_connected: &'static str,
    /// Outcomes.
    pub accepted: &'static str,
    /// Outcomes.
    pub refused: &'static str,
    /// Refusals page.
    pub refusals_title: &'static str,
    /// Refusals page.
    pub refusals_intro: &'static str,
    /// Refusals page: any value of a filter.
    pub any: &'static str,
    /// Refusals page.
    pub filter_button: &'static str,
    /// Refusals page: unknown devices counted per minute.
    pub unknown_devices_counted: &'static str,
    /// "requests".
    pub requests: &'static str,
    /// Folded repeats.
    pub folded: &'static str,
    /// Audit page.
    pub audit_title: &'static str,
    /// Empty lists.
    pub none: &'static str,
    /// Device actions.
    pub actions: &'static str,
    /// Device actions.
    pub mark_lost: &'static str,
    /// Device actions.
    pub mark_found: &'static str,
    /// Device actions.
    pub revoke: &'static str,
    /// Device actions.
    pub revoke_confirm_title: &'static str,
    /// Device actions.
    pub revoke_confirm_text: &'static str,
    /// Device actions.
    pub revoke_reason: &'static str,
    /// Device actions.
    pub confirm: &'static str,
    /// Device actions.
    pub cancel: &'static str,
    /// Done.
    pub saved: &'static str,
    /// Refused actions.
    pub not_allowed: &'static str,
    /// A form without a valid CSRF token.
    pub form_expired: &'static str,
    /// Not found.
    pub not_found: &'static str,
    /// A server error.
    pub server_error: &'static str,
    /// Dashboard.
    pub dashboard_title: &'static str,
    /// Dashboard.
    pub sessions_now: &'static str,
    /// Dashboard.
    pub refusals_per_hour: &'static str,
    /// Dashboard.
    pub sessions_today: &'static str,
    /// Dashboard.
    pub noncompliant_devices: &'static str,
    /// Dashboard.
    pub contracts_ending: &'static str,
    /// Dashboard.
    pub certificates_expiring: &'static str,
    /// Dashboard: chart description.
    pub chart_last_24h: &'static str,
    /// Bundles.
    pub issue_bundle: &'static str,
    /// Bundles.
    pub bundle_for: &'static str,
    /// Bundles.
    pub all_systems: &'static str,
    /// Bundles.
    pub bundle_ready: &'static str,
    /// Bundles.
    pub password_once: &'static str,
    /// Bundles.
    pub download_bundle: &'static str,
    /// Bundles.
    pub download_gone: &'static str,
    /// Occupancy.
    pub nav_occupancy: &'static str,
    /// Occupancy.
    pub occupancy_title: &'static str,
    /// Occupancy.
    pub occupancy_intro: &'static str,
    /// Occupancy.
    pub day: &'static str,
    /// Occupancy.
    pub week: &'static str,
    /// Occupancy.
    pub date: &'static str,
    /// Occupancy.
    pub show: &'static str,
    /// Occupancy.
    pub download_csv: &'static str,
    /// Occupancy: sessions of no location.
    pub other_location: &'static str,
    /// Occupancy.
    pub location: &'static str,
    /// Occupancy.
    pub peak: &'static str,
    /// Occupancy.
    pub workplaces: &'static str,
    /// Occupancy.
    pub devices_per_hour: &'static str,
    /// Occupancy.
    pub peak_per_day: &'static str,
    /// Weekdays, Monday first, short.
    pub weekdays: [&'static str; 7],
    /// A reason code in words.
    pub reason_text: fn(&str) -> &'static str,
    /// A stored word (role, device kind, compliance, source) in this language.
    pub word: fn(&str) -> &'static str,
}

/// Nederlands.
pub static NL: Texts = Texts {
    lang: Lang::Nl,
    other_language: "English",
    console: "Poortwachter — beheer",
    portal: "Poortwachter — mijn apparaten",
    my_devices: "Mijn apparaten",
    portal_login_intro: "Log in met uw account van de gemeente (hetzelfde als voor de werkplek).",
    directory_down: "Inloggen lukt nu niet: de gebruikersdirectory is niet bereikbaar. Probeer het over een paar minuten opnieuw.",
    not_an_owner: "Uw account mag (nog) geen eigen apparaten registreren, of uw toegang is beëindigd. Neem contact op met de servicedesk.",
    access_ends: "Uw toegang loopt tot en met",
    register_this: "Dit apparaat registreren",
    no_devices: "U heeft nog geen apparaten geregistreerd.",
    new_certificate: "Nieuw certificaat",
    mark_lost_own: "Kwijt of gestolen",
    operating_system: "Besturingssysteem",
    register_intro: "Registreer het apparaat dat u nu gebruikt. Daarna krijgt u een certificaat waarmee het op de wifi komt:",
    label_example: "bijvoorbeeld: mijn laptop",
    mac_found: "Het MAC-adres van dit apparaat is herkend en al ingevuld.",
    mac_help_title: "Waar vind ik het MAC-adres (wifi-adres)?",
    mac_help_windows: "Windows: Instellingen > Netwerk en internet > Wifi > Hardware-eigenschappen > Fysiek adres (MAC).",
    mac_help_apple: "Mac: Systeeminstellingen > Wifi > Details > Wifi-adres. iPhone/iPad: Instellingen > Wifi > (i) bij het netwerk; zet 'Privé-wifi-adres' uit voor dit netwerk.",
    mac_help_android: "Android: Instellingen > Wifi > het netwerk > Privacy: 'Apparaat-MAC gebruiken'; het adres staat bij Geavanceerd.",
    mac_help_linux: "Linux: ip link (het adres na link/ether van uw wifi-kaart).",
    register_button: "Registreren en certificaat ophalen",
    choose_system: "Kies uw besturingssysteem.",
    password_once_employee: "Het wachtwoord voor het installeren van uw certificaat. Schrijf het over of houd deze pagina open: het wordt maar één keer getoond.",
    reconnect: "Download de bundel, volg LEESMIJ.txt erin, en verbind daarna met",
    lost_confirm: "Het apparaat wordt direct van het netwerk gehaald en kan niet meer inloggen tot de servicedesk het terugzet.",
    skip_to_content: "Naar de inhoud",
    nav_dashboard: "Overzicht",
    nav_search: "Zoeken",
    nav_refusals: "Weigeringen",
    nav_audit: "Auditlog",
    logout: "Uitloggen",
    logged_in_as: "Ingelogd als",
    role_admin: "ICT-beheerder",
    role_helpdesk: "servicedesk",
    role_employee: "medewerker",
    login_title: "Inloggen",
    username: "Gebruikersnaam",
    password: "Wachtwoord",
    login_button: "Inloggen",
    login_failed: "Gebruikersnaam of wachtwoord onjuist.",
    login_locked: "Te veel mislukte pogingen. Probeer het later opnieuw.",
    session_ended: "Uw sessie is verlopen. Log opnieuw in.",
    search_title: "Zoeken",
    search_label: "Naam, gebruikersnaam, e-mail, MAC-adres of apparaat-id",
    search_button: "Zoeken",
    nothing_found: "Niets gevonden.",
    owners: "Eigenaren",
    devices: "Apparaten",
    certificates: "Certificaten",
    sessions: "Sessies",
    why_timeline: "Waarom (nieuwste eerst)",
    name: "Naam",
    email: "E-mail",
    department: "Afdeling",
    role: "Rol",
    contract_until: "Contract tot en met",
    status: "Status",
    source: "Bron",
    label: "Naam apparaat",
    kind: "Soort",
    mac: "MAC-adres",
    compliance: "Naleving",
    certificate_until: "Certificaat geldig tot",
    time: "Tijd",
    access_point: "Accesspoint",
    ssid: "Netwerk (SSID)",
    reason: "Reden",
    outcome: "Uitkomst",
    owner: "Eigenaar",
    started: "Begonnen",
    ended: "Beëindigd",
    ip_address: "IP-adres",
    serial: "Serienummer",
    valid_from: "Geldig vanaf",
    issued_by: "Uitgegeven door",
    actor: "Door",
    action: "Actie",
    target: "Betreft",
    active: "actief",
    disabled: "uitgeschakeld",
    lost: "verloren",
    revoked: "ingetrokken",
    current: "huidig",
    superseded: "vervangen",
    still_connected: "nog verbonden",
    accepted: "toegelaten",
    refused: "geweigerd",
    refusals_title: "Laatste weigeringen",
    refusals_intro: "Het beginpunt voor \"ik kom niet op de wifi\": kies het accesspoint of netwerk waar de beller is.",
    any: "alle",
    filter_button: "Filteren",
    unknown_devices_counted: "Onbekende apparaten (per minuut geteld)",
    requests: "verzoeken",
    folded: "keer eerder",
    audit_title: "Auditlog",
    none: "Geen.",
    actions: "Acties",
    mark_lost: "Markeer als verloren",
    mark_found: "Teruggevonden",
    revoke: "Intrekken",
    revoke_confirm_title: "Apparaat intrekken?",
    revoke_confirm_text: "Het apparaat wordt direct van het netwerk gehaald en kan niet meer inloggen. Dit kan niet ongedaan worden gemaakt: een nieuw apparaat moet opnieuw worden geregistreerd.",
    revoke_reason: "Reden van intrekken",
    confirm: "Ja, intrekken",
    cancel: "Annuleren",
    saved: "Opgeslagen.",
    not_allowed: "Dit mag uw rol niet. Vraag een ICT-beheerder.",
    form_expired: "Het formulier is verlopen of niet van deze site. Probeer het opnieuw.",
    not_found: "Niet gevonden.",
    server_error: "Er ging iets mis aan onze kant. Probeer het zo opnieuw; blijft het, meld het bij ICT.",
    dashboard_title: "Overzicht",
    sessions_now: "Verbonden apparaten nu, per netwerk",
    refusals_per_hour: "Weigeringen per uur, per reden",
    sessions_today: "Verbonden apparaten vandaag, per uur en netwerk",
    noncompliant_devices: "Apparaten die niet voldoen",
    contracts_ending: "Contracten die binnen 14 dagen eindigen",
    certificates_expiring: "Certificaten die binnen 30 dagen verlopen",
    chart_last_24h: "de afgelopen 24 uur",
    issue_bundle: "Certificaat en bundel uitgeven",
    bundle_for: "Voor",
    all_systems: "alle systemen",
    bundle_ready: "Bundel uitgegeven",
    password_once: "Eenmalig wachtwoord van de bundel. Het wordt nergens bewaard en alleen nu getoond: geef het de eigenaar apart van het bestand.",
    download_bundle: "Bundel downloaden",
    download_gone: "Deze download is verlopen of al opgehaald. Geef een nieuwe bundel uit.",
    nav_occupancy: "Bezetting",
    occupancy_title: "Bezetting",
    occupancy_intro: "Apparaten verbonden per uur en per locatie, uit de accountingsessies: een apparaat telt mee in elk uur dat het verbonden was.",
    day: "Dag",
    week: "Week",
    date: "Datum",
    show: "Tonen",
    download_csv: "Download als CSV",
    other_location: "overig",
    location: "Locatie",
    peak: "Piek",
    workplaces: "Werkplekken",
    devices_per_hour: "Apparaten per uur",
    peak_per_day: "Piek per dag",
    weekdays: ["ma", "di", "wo", "do", "vr", "za", "zo"],
    reason_text: reason_nl,
    word: word_nl,
};

/// English.
pub static EN: Texts = Texts {
    lang: Lang::En,
    other_language: "Nederlands",
    console: "Poortwachter — console",
    portal: "Poortwachter — my devices",
    my_devices: "My devices",
    portal_login_intro: "Log in with your municipality account (the same as for the workspace).",
    directory_down: "Logging in is not possible now: the user directory cannot be reached. Try again in a few minutes.",
    not_an_owner: "Your account may not register own devices (yet), or your access has ended. Please contact the service desk.",
    access_ends: "Your access lasts until",
    register_this: "Register this device",
    no_devices: "You have not registered any devices yet.",
    new_certificate: "New certificate",
    mark_lost_own: "Lost or stolen",
    operating_system: "Operating system",
    register_intro: "Register the device you are using now. Then you get a certificate that lets it on the Wi-Fi:",
    label_example: "for example: my laptop",
    mac_found: "This device's MAC address was recognised and filled in.",
    mac_help_title: "Where do I find the MAC address (Wi-Fi address)?",
    mac_help_windows: "Windows: Settings > Network & internet > Wi-Fi > Hardware properties > Physical address (MAC).",
    mac_help_apple: "Mac: System Settings > Wi-Fi > Details > Wi-Fi address. iPhone/iPad: Settings > Wi-Fi > (i) by the network; turn 'Private Wi-Fi Address' off for this network.",
    mac_help_android: "Android: Settings > Wi-Fi > the network > Privacy: 'Use device MAC'; the address is under Advanced.",
    mac_help_linux: "Linux: ip link (the address after link/ether of your Wi-Fi card).",
    register_button: "Register and get the certificate",
    choose_system: "Choose your operating system.",
    password_once_employee: "The password for installing your certificate. Copy it or keep this page open: it is shown only once.",
    reconnect: "Download the bundle, follow README.txt in it, then connect to",
    lost_confirm: "The device is taken off the network at once and cannot log in until the service desk restores it.",
    skip_to_content: "Skip to content",
    nav_dashboard: "Dashboard",
    nav_search: "Search",
    nav_refusals: "Refusals",
    nav_audit: "Audit log",
    logout: "Log out",
    logged_in_as: "Logged in as",
    role_admin: "ICT administrator",
    role_helpdesk: "service desk",
    role_employee: "employee",
    login_title: "Log in",
    username: "Username",
    password: "Password",
    login_button: "Log in",
    login_failed: "Wrong username or password.",
    login_locked: "Too many failed attempts. Try again later.",
    session_ended: "Your session has ended. Please log in again.",
    search_title: "Search",
    search_label: "Name, username, e-mail, MAC address or device id",
    search_button: "Search",
    nothing_found: "Nothing found.",
    owners: "Owners",
    devices: "Devices",
    certificates: "Certificates",
    sessions: "Sessions",
    why_timeline: "Why (newest first)",
    name: "Name",
    email: "E-mail",
    department: "Department",
    role: "Role",
    contract_until: "Contract until",
    status: "Status",
    source: "Source",
    label: "Device name",
    kind: "Kind",
    mac: "MAC address",
    compliance: "Compliance",
    certificate_until: "Certificate valid until",
    time: "Time",
    access_point: "Access point",
    ssid: "Network (SSID)",
    reason: "Reason",
    outcome: "Outcome",
    owner: "Owner",
    started: "Started",
    ended: "Ended",
    ip_address: "IP address",
    serial: "Serial",
    valid_from: "Valid from",
    issued_by: "Issued by",
    actor: "By",
    action: "Action",
    target: "Concerns",
    active: "active",
    disabled: "disabled",
    lost: "lost",
    revoked: "revoked",
    current: "current",
    superseded: "superseded",
    still_connected: "still connected",
    accepted: "admitted",
    refused: "refused",
    refusals_title: "Latest refusals",
    refusals_intro: "Where \"I can't get on the Wi-Fi\" starts: pick the access point or network the caller is at.",
    any: "any",
    filter_button: "Filter",
    unknown_devices_counted: "Unknown devices (counted per minute)",
    requests: "requests",
    folded: "times before",
    audit_title: "Audit log",
    none: "None.",
    actions: "Actions",
    mark_lost: "Mark as lost",
    mark_found: "Found again",
    revoke: "Revoke",
    revoke_confirm_title: "Revoke this device?",
    revoke_confirm_text: "The device is taken off the network at once and cannot log in again. This cannot be undone: a new device must be registered anew.",
    revoke_reason: "Reason for revoking",
    confirm: "Yes, revoke",
    cancel: "Cancel",
    saved: "Saved.",
    not_allowed: "Your role may not do this. Ask an ICT administrator.",
    form_expired: "The form has expired or is not from this site. Please try again.",
    not_found: "Not found.",
    server_error: "Something went wrong on our side. Try again shortly; if it persists, tell ICT.",
    dashboard_title: "Dashboard",
    sessions_now: "Devices connected now, per network",
    refusals_per_hour: "Refusals per hour, by reason",
    sessions_today: "Devices connected today, per hour and network",
    noncompliant_devices: "Devices that do not comply",
    contracts_ending: "Contracts ending within 14 days",
    certificates_expiring: "Certificates expiring within 30 days",
    chart_last_24h: "the last 24 hours",
    issue_bundle: "Issue certificate and bundle",
    bundle_for: "For",
    all_systems: "all systems",
    bundle_ready: "Bundle issued",
    password_once: "One-time password of the bundle. It is stored nowhere and shown only now: give it to the owner apart from the file.",
    download_bundle: "Download the bundle",
    download_gone: "This download has expired or was fetched already. Issue a new bundle.",
    nav_occupancy: "Occupancy",
    occupancy_title: "Occupancy",
    occupancy_intro: "Devices connected per hour and location, from the accounting sessions: a device counts in every hour it was connected.",
    day: "Day",
    week: "Week",
    date: "Date",
    show: "Show",
    download_csv: "Download as CSV",
    other_location: "other",
    location: "Location",
    peak: "Peak",
    workplaces: "Workplaces",
    devices_per_hour: "Devices per hour",
    peak_per_day: "Peak per day",
    weekdays: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    reason_text: reason_en,
    word: word_en,
};

/// The texts of `lang`.
pub fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::Nl => &NL,
        Lang::En => &EN,
    }
}

fn word_nl(word: &str) -> &'static str {
    match word {
        "staff" => "medewerker",
        "temp" => "uitzendkracht",
        "intern" => "stagiair",
        "contractor" => "externe inhuur",
        "laptop" => "laptop",
        "tablet" => "tablet",
        "phone" => "telefoon",
        "other" => "anders",
        "compliant" => "voldoet",
        "noncompliant" => "voldoet niet",
        "unknown" => "onbekend",
        "manual" => "met de hand",
        "import" => "HR-import",
        "directory" => "directory",
        "scim" => "SCIM",
        _ => "?",
    }
}

fn word_en(word: &str) -> &'static str {
    match word {
        "staff" => "employee",
        "temp" => "temp",
        "intern" => "intern",
        "contractor" => "contractor",
        "laptop" => "laptop",
        "tablet" => "tablet",
        "phone" => "phone",
        "other" => "other",
        "compliant" => "compliant",
        "noncompliant" => "not compliant",
        "unknown" => "unknown",
        "manual" => "by hand",
        "import" => "HR import",
        "directory" => "directory",
        "scim" => "SCIM",
        _ => "?",
    }
}

fn reason_nl(code: &str) -> &'static str {
    match code {
        "compliant" => "toegelaten: apparaat voldoet",
        "registration" => "onbekend apparaat: naar het registratienetwerk",
        "noncompliant" => "apparaat voldoet niet (quarantaine)",
        "compliance_unknown" => "naleving nog nooit gecontroleerd (quarantaine)",
        "compliance_stale" => "laatste nalevingscontrole te oud (quarantaine)",
        "unknown_device" => "onbekend apparaat: MAC-adres niet geregistreerd",
        "device_lost" => "apparaat is als verloren gemeld",
        "device_revoked" => "apparaat is ingetrokken",
        "owner_disabled" => "eigenaar is uitgeschakeld",
        "owner_not_yet_valid" => "contract van de eigenaar is nog niet begonnen",
        "owner_expired" => "contract van de eigenaar is afgelopen",
        "ssid_not_served" => "verkeerd netwerk (SSID)",
        "no_mac" => "geen bruikbaar MAC-adres",
        "vlan_not_configured" => "VLAN niet ingesteld (configuratiefout)",
        "unsupported_method" => "inlogmethode niet ondersteund",
        "mab_disabled" => "MAC-inlog staat uit voor dit accesspoint",
        "mab_bad_password" => "MAC-inlog met verkeerd wachtwoord",
        "mac_mismatch" => "gebruikersnaam en apparaat noemen verschillende MAC-adressen",
        "tls_failed" => "certificaat geweigerd (verlopen, andere CA of geen certificaat)",
        "eap_method_refused" => "apparaat weigert EAP-TLS (verkeerde wifi-instellingen)",
        "eap_protocol" => "apparaat houdt zich niet aan het EAP-protocol",
        "certificate_unknown" => {
            "certificaat hoort bij geen geregistreerd apparaat (vervangen of ingetrokken)"
        }
        _ => "andere reden",
    }
}

fn reason_en(code: &str) -> &'static str {
    match code {
        "compliant" => "admitted: device complies",
        "registration" => "unknown device: to the registration network",
        "noncompliant" => "device does not comply (quarantine)",
        "compliance_unknown" => "compliance never checked (quarantine)",
        "compliance_stale" => "last compliance check too old (quarantine)",
        "unknown_device" => "unknown device: MAC address not registered",
        "device_lost" => "device was reported lost",
        "device_revoked" => "device was revoked",
        "owner_disabled" => "owner is disabled",
        "owner_not_yet_valid" => "owner's contract has not started",
        "owner_expired" => "owner's contract has ended",
        "ssid_not_served" => "wrong network (SSID)",
        "no_mac" => "no usable MAC address",
        "vlan_not_configured" => "VLAN not configured (configuration error)",
        "unsupported_method" => "login method not supported",
        "mab_disabled" => "MAC login is off for this access point",
        "mab_bad_password" => "MAC login with a wrong password",
        "mac_mismatch" => "username and device name different MAC addresses",
        "tls_failed" => "certificate refused (expired, another CA, or none)",
        "eap_method_refused" => "device refuses EAP-TLS (wrong Wi-Fi settings)",
        "eap_protocol" => "device broke the EAP protocol",
        "certificate_unknown" => {
            "certificate belongs to no registered device (superseded or revoked)"
        }
        _ => "other reason",
    }
}

/// The texts of the ICT actions (owner and device edits, API tokens), one place per
/// language: [`MANAGE_NL`] and [`MANAGE_EN`].
#[derive(Debug)]
pub struct ManageTexts {
    /// Navigation: the API tokens (ICT only).
    pub nav_tokens: &'static str,
    /// A link to an edit page.
    pub edit: &'static str,
    /// The owner's edit page.
    pub edit_owner_title: &'static str,
    /// Heading: the owner's details.
    pub details: &'static str,
    /// Button.
    pub save: &'static str,
    /// Under the contract date field.
    pub date_hint: &'static str,
    /// Heading: disable or enable.
    pub access: &'static str,
    /// Above the disable form.
    pub disable_text: &'static str,
    /// Label.
    pub disable_reason: &'static str,
    /// Button.
    pub disable: &'static str,
    /// Button.
    pub enable: &'static str,
    /// Link and page title.
    pub register_device: &'static str,
    /// Label: one or more MACs.
    pub macs: &'static str,
    /// The device's edit page.
    pub edit_device_title: &'static str,
    /// Label.
    pub add_macs: &'static str,
    /// Legend: the MACs to remove.
    pub remove_macs: &'static str,
    /// Heading and button.
    pub compliance_set: &'static str,
    /// Label.
    pub note: &'static str,
    /// After registering.
    pub device_registered: &'static str,
    /// A randomized MAC.
    pub private_mac_warning: &'static str,
    /// Above the token list.
    pub tokens_intro: &'static str,
    /// Label.
    pub token_name: &'static str,
    /// Label and column.
    pub scope: &'static str,
    /// Column.
    pub created: &'static str,
    /// Column.
    pub last_used: &'static str,
    /// Column.
    pub revoked_at: &'static str,
    /// Heading and button.
    pub create_token: &'static str,
    /// The page with the secret.
    pub token_created: &'static str,
    /// Beside the secret.
    pub token_once: &'static str,
    /// Link.
    pub back_to_tokens: &'static str,
    /// Confirmation page.
    pub revoke_token_title: &'static str,
    /// Confirmation page.
    pub revoke_token_text: &'static str,
    /// A name taken.
    pub token_exists: &'static str,
    /// A disable without its reason.
    pub reason_required: &'static str,
}

/// Nederlands.
pub static MANAGE_NL: ManageTexts = ManageTexts {
    nav_tokens: "API-sleutels",
    edit: "Bewerken",
    edit_owner_title: "Eigenaar bewerken",
    details: "Gegevens",
    save: "Opslaan",
    date_hint: "DD-MM-JJJJ of JJJJ-MM-DD; leeg: geen einddatum",
    access: "Toegang",
    disable_text: "Uitschakelen weigert al haar of zijn apparaten direct en verbreekt de verbindingen.",
    disable_reason: "Reden van uitschakelen",
    disable: "Uitschakelen",
    enable: "Weer inschakelen",
    register_device: "Apparaat registreren",
    macs: "MAC-adressen (een per regel)",
    edit_device_title: "Apparaat bewerken",
    add_macs: "MAC-adressen toevoegen (een per regel)",
    remove_macs: "MAC-adressen verwijderen",
    compliance_set: "Naleving instellen",
    note: "Toelichting",
    device_registered: "Apparaat geregistreerd.",
    private_mac_warning: "Let op: dit is een willekeurig (privé) MAC-adres; het verandert tenzij het apparaat voor dit netwerk een vast adres gebruikt.",
    tokens_intro: "Sleutels voor de beheer-API. Het geheim wordt één keer getoond en alleen als hash bewaard.",
    token_name: "Naam (wie of wat de sleutel gebruikt)",
    scope: "Bevoegdheid",
    created: "Gemaakt",
    last_used: "Laatst gebruikt",
    revoked_at: "Ingetrokken",
    create_token: "Sleutel maken",
    token_created: "Sleutel gemaakt",
    token_once: "Kopieer het geheim nu: het wordt niet nog eens getoond. Gebruik: Authorization: Bearer <geheim>",
    back_to_tokens: "Terug naar de sleutels",
    revoke_token_title: "Sleutel intrekken?",
    revoke_token_text: "Wie deze sleutel gebruikt, wordt vanaf nu geweigerd. De naam kan niet opnieuw worden gebruikt.",
    token_exists: "bestaat al (namen worden nooit hergebruikt, ook niet na intrekken)",
    reason_required: "vul in waarom (de servicedesk leest dit)",
};

/// English.
pub static MANAGE_EN: ManageTexts = ManageTexts {
    nav_tokens: "API tokens",
    edit: "Edit",
    edit_owner_title: "Edit owner",
    details: "Details",
    save: "Save",
    date_hint: "DD-MM-YYYY or YYYY-MM-DD; empty: no end date",
    access: "Access",
    disable_text: "Disabling refuses all of the owner's devices at once and disconnects them.",
    disable_reason: "Reason for disabling",
    disable: "Disable",
    enable: "Enable again",
    register_device: "Register a device",
    macs: "MAC addresses (one per line)",
    edit_device_title: "Edit device",
    add_macs: "Add MAC addresses (one per line)",
    remove_macs: "Remove MAC addresses",
    compliance_set: "Set compliance",
    note: "Note",
    device_registered: "Device registered.",
    private_mac_warning: "Note: this is a randomized (private) MAC address; it changes unless the device uses a fixed address for this network.",
    tokens_intro: "Keys for the admin API. The secret is shown once and stored only as a hash.",
    token_name: "Name (who or what uses the key)",
    scope: "Scope",
    created: "Created",
    last_used: "Last used",
    revoked_at: "Revoked",
    create_token: "Create a key",
    token_created: "Key created",
    token_once: "Copy the secret now: it is not shown again. Use: Authorization: Bearer <secret>",
    back_to_tokens: "Back to the keys",
    revoke_token_title: "Revoke the key?",
    revoke_token_text: "Whoever uses this key is refused from now on. The name cannot be used again.",
    token_exists: "exists already (names are never reused, not even after revocation)",
    reason_required: "say why (the service desk reads it)",
};

/// The ICT action texts of `lang`.
pub fn manage_texts(lang: Lang) -> &'static ManageTexts {
    match lang {
        Lang::Nl => &MANAGE_NL,
        Lang::En => &MANAGE_EN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_word_has_words_in_both_languages() {
        use crate::model::{Compliance, DeviceKind, OwnerSource, Role};
        let mut words: Vec<String> = Vec::new();
        words.extend(
            [Role::Staff, Role::Temp, Role::Intern, Role::Contractor].map(|r| r.to_string()),
        );
        words.extend(
            [
                DeviceKind::Laptop,
                DeviceKind::Tablet,
                DeviceKind::Phone,
                DeviceKind::Other,
            ]
            .map(|k| k.to_string()),
        );
        words.extend(
            [
                Compliance::Unknown,
                Compliance::Compliant,
                Compliance::Noncompliant,
            ]
            .map(|c| c.to_string()),
        );
        words.extend(
            [
                OwnerSource::Manual,
                OwnerSource::Import,
                OwnerSource::Directory,
                OwnerSource::Scim,
            ]
            .map(|s| s.to_string()),
        );
        for w in &words {
            for t in [&NL, &EN] {
                assert_ne!((t.word)(w), "?", "{} {w}", t.lang);
            }
        }
    }

    #[test]
    fn every_reason_has_words_in_both_languages() {
        for r in crate::policy::Reason::ALL {
            for t in [&NL, &EN] {
                let words = (t.reason_text)(r.as_str());
                assert_ne!(words, (t.reason_text)("no such reason"), "{} {r}", t.lang);
            }
        }
    }
}
