//! Attribute numbers and enumerated values we use, taken from radius-rs's RFC dictionaries
//! where it has them, plus Microsoft's vendor attributes (RFC 2548) that it lacks.

use radius::core::code::Code;
use radius::core::{rfc2865, rfc2866, rfc2868, rfc2869, rfc3576, rfc3580};

/// Packet codes.
pub mod code {
    use super::Code;
    /// Access-Request.
    pub const ACCESS_REQUEST: u8 = Code::AccessRequest as u8;
    /// Access-Accept.
    pub const ACCESS_ACCEPT: u8 = Code::AccessAccept as u8;
    /// Access-Reject.
    pub const ACCESS_REJECT: u8 = Code::AccessReject as u8;
    /// Accounting-Request.
    pub const ACCOUNTING_REQUEST: u8 = Code::AccountingRequest as u8;
    /// Accounting-Response.
    pub const ACCOUNTING_RESPONSE: u8 = Code::AccountingResponse as u8;
    /// Access-Challenge.
    pub const ACCESS_CHALLENGE: u8 = Code::AccessChallenge as u8;
    /// Status-Server (RFC 5997).
    pub const STATUS_SERVER: u8 = Code::StatusServer as u8;
    /// Disconnect-Request (RFC 5176).
    pub const DISCONNECT_REQUEST: u8 = Code::DisconnectRequest as u8;
    /// CoA-Request (RFC 5176).
    pub const COA_REQUEST: u8 = Code::CoARequest as u8;

    /// The name of a code, for logs.
    pub fn name(code: u8) -> &'static str {
        Code::from(code).string()
    }
}

/// User-Name.
pub const USER_NAME: u8 = rfc2865::USER_NAME_TYPE;
/// User-Password.
pub const USER_PASSWORD: u8 = rfc2865::USER_PASSWORD_TYPE;
/// CHAP-Password.
pub const CHAP_PASSWORD: u8 = rfc2865::CHAP_PASSWORD_TYPE;
/// NAS-IP-Address.
pub const NAS_IP_ADDRESS: u8 = rfc2865::NAS_IP_ADDRESS_TYPE;
/// NAS-IPv6-Address (RFC 3162).
pub const NAS_IPV6_ADDRESS: u8 = 95;
/// NAS-Port.
pub const NAS_PORT: u8 = rfc2865::NAS_PORT_TYPE;
/// Service-Type.
pub const SERVICE_TYPE: u8 = rfc2865::SERVICE_TYPE_TYPE;
/// Framed-IP-Address.
pub const FRAMED_IP_ADDRESS: u8 = rfc2865::FRAMED_IP_ADDRESS_TYPE;
/// Framed-MTU (12): the largest frame the NAS carries to the supplicant (RFC 3579 §2.2).
pub const FRAMED_MTU: u8 = rfc2865::FRAMED_MTU_TYPE;
/// Reply-Message.
pub const REPLY_MESSAGE: u8 = rfc2865::REPLY_MESSAGE_TYPE;
/// State.
pub const STATE: u8 = rfc2865::STATE_TYPE;
/// Proxy-State: echoed unchanged, in order, in every reply (RFC 2865 §5.33).
pub const PROXY_STATE: u8 = rfc2865::PROXY_STATE_TYPE;
/// Class.
pub const CLASS: u8 = rfc2865::CLASS_TYPE;
/// Vendor-Specific.
pub const VENDOR_SPECIFIC: u8 = rfc2865::VENDOR_SPECIFIC_TYPE;
/// Session-Timeout.
pub const SESSION_TIMEOUT: u8 = rfc2865::SESSION_TIMEOUT_TYPE;
/// Termination-Action.
pub const TERMINATION_ACTION: u8 = rfc2865::TERMINATION_ACTION_TYPE;
/// Called-Station-Id.
pub const CALLED_STATION_ID: u8 = rfc2865::CALLED_STATION_ID_TYPE;
/// Calling-Station-Id.
pub const CALLING_STATION_ID: u8 = rfc2865::CALLING_STATION_ID_TYPE;
/// NAS-Identifier.
pub const NAS_IDENTIFIER: u8 = rfc2865::NAS_IDENTIFIER_TYPE;
/// CHAP-Challenge.
pub const CHAP_CHALLENGE: u8 = rfc2865::CHAP_CHALLENGE_TYPE;
/// NAS-Port-Type.
pub const NAS_PORT_TYPE: u8 = rfc2865::NAS_PORT_TYPE_TYPE;
/// Acct-Status-Type.
pub const ACCT_STATUS_TYPE: u8 = rfc2866::ACCT_STATUS_TYPE_TYPE;
/// Acct-Delay-Time.
pub const ACCT_DELAY_TIME: u8 = rfc2866::ACCT_DELAY_TIME_TYPE;
/// Acct-Input-Octets.
pub const ACCT_INPUT_OCTETS: u8 = rfc2866::ACCT_INPUT_OCTETS_TYPE;
/// Acct-Output-Octets.
pub const ACCT_OUTPUT_OCTETS: u8 = rfc2866::ACCT_OUTPUT_OCTETS_TYPE;
/// Acct-Session-Id.
pub const ACCT_SESSION_ID: u8 = rfc2866::ACCT_SESSION_ID_TYPE;
/// Acct-Session-Time.
pub const ACCT_SESSION_TIME: u8 = rfc2866::ACCT_SESSION_TIME_TYPE;
/// Acct-Input-Packets.
pub const ACCT_INPUT_PACKETS: u8 = rfc2866::ACCT_INPUT_PACKETS_TYPE;
/// Acct-Output-Packets.
pub const ACCT_OUTPUT_PACKETS: u8 = rfc2866::ACCT_OUTPUT_PACKETS_TYPE;
/// Acct-Terminate-Cause.
pub const ACCT_TERMINATE_CAUSE: u8 = rfc2866::ACCT_TERMINATE_CAUSE_TYPE;
/// Acct-Input-Gigawords.
pub const ACCT_INPUT_GIGAWORDS: u8 = rfc2869::ACCT_INPUT_GIGAWORDS_TYPE;
/// Acct-Output-Gigawords.
pub const ACCT_OUTPUT_GIGAWORDS: u8 = rfc2869::ACCT_OUTPUT_GIGAWORDS_TYPE;
/// Event-Timestamp.
pub const EVENT_TIMESTAMP: u8 = rfc2869::EVENT_TIMESTAMP_TYPE;
/// EAP-Message.
pub const EAP_MESSAGE: u8 = rfc2869::EAP_MESSAGE_TYPE;
/// Message-Authenticator.
pub const MESSAGE_AUTHENTICATOR: u8 = rfc2869::MESSAGE_AUTHENTICATOR_TYPE;
/// Tunnel-Type.
pub const TUNNEL_TYPE: u8 = rfc2868::TUNNEL_TYPE_TYPE;
/// Tunnel-Medium-Type.
pub const TUNNEL_MEDIUM_TYPE: u8 = rfc2868::TUNNEL_MEDIUM_TYPE_TYPE;
/// Tunnel-Private-Group-ID.
pub const TUNNEL_PRIVATE_GROUP_ID: u8 = rfc2868::TUNNEL_PRIVATE_GROUP_ID_TYPE;
/// Error-Cause (RFC 5176).
pub const ERROR_CAUSE: u8 = rfc3576::ERROR_CAUSE_TYPE;

/// Tunnel-Type = VLAN (RFC 3580).
pub const TUNNEL_TYPE_VLAN: u32 = rfc3580::TUNNEL_TYPE_VLAN;
/// Tunnel-Medium-Type = IEEE-802.
pub const TUNNEL_MEDIUM_IEEE_802: u32 = rfc2868::TUNNEL_MEDIUM_TYPE_IEEE_802;

/// Acct-Status-Type values.
pub mod acct_status {
    use super::rfc2866;
    /// Start.
    pub const START: u32 = rfc2866::ACCT_STATUS_TYPE_START;
    /// Stop.
    pub const STOP: u32 = rfc2866::ACCT_STATUS_TYPE_STOP;
    /// Interim-Update.
    pub const INTERIM_UPDATE: u32 = rfc2866::ACCT_STATUS_TYPE_INTERIM_UPDATE;
    /// Accounting-On.
    pub const ACCOUNTING_ON: u32 = rfc2866::ACCT_STATUS_TYPE_ACCOUNTING_ON;
    /// Accounting-Off.
    pub const ACCOUNTING_OFF: u32 = rfc2866::ACCT_STATUS_TYPE_ACCOUNTING_OFF;
}

/// The name of an Acct-Terminate-Cause value (RFC 2866 §5.10, RFC 3580).
pub fn terminate_cause_name(v: u32) -> &'static str {
    match v {
        1 => "User-Request",
        2 => "Lost-Carrier",
        3 => "Lost-Service",
        4 => "Idle-Timeout",
        5 => "Session-Timeout",
        6 => "Admin-Reset",
        7 => "Admin-Reboot",
        8 => "Port-Error",
        9 => "NAS-Error",
        10 => "NAS-Request",
        11 => "NAS-Reboot",
        12 => "Port-Unneeded",
        13 => "Port-Preempted",
        14 => "Port-Suspended",
        15 => "Service-Unavailable",
        16 => "Callback",
        17 => "User-Error",
        18 => "Host-Request",
        19 => "Supplicant-Restart",
        20 => "Reauthentication-Failure",
        21 => "Port-Reinit",
        22 => "Port-Disabled",
        _ => "Unknown",
    }
}

/// Microsoft's vendor id (RFC 2548), absent from radius-rs.
pub const VENDOR_MICROSOFT: u32 = 311;
/// MS-MPPE-Send-Key (vendor 311, type 16), salt-encrypted.
pub const MS_MPPE_SEND_KEY: u8 = 16;
/// MS-MPPE-Recv-Key (vendor 311, type 17), salt-encrypted.
pub const MS_MPPE_RECV_KEY: u8 = 17;
