//! The schema URIs this server speaks, and its discovery documents (RFC 7644 §4):
//! ServiceProviderConfig, ResourceTypes and Schemas, describing exactly what
//! [`super::user`] reads and writes.

use serde_json::{json, Value};

/// The core User schema (RFC 7643 §4.1).
pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension (RFC 7643 §4.3): `department`.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Our extension: the contract's first and last day.
pub const POORTWACHTER_USER: &str = "urn:poortwachter:params:scim:schemas:extension:2.0:User";
/// The extensions a User may carry.
pub const EXTENSION_URNS: &[&str] = &[ENTERPRISE_USER, POORTWACHTER_USER];
/// A list answer (RFC 7644 §3.4.2).
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// A PATCH request (RFC 7644 §3.5.2).
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The most resources one list answer holds (`count` above it is cut to it).
pub const MAX_RESULTS: u64 = 200;

/// `/ServiceProviderConfig`: PATCH and filter yes; bulk, sort, ETag, password change no.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token from `poortwachter token create --scope scim`, sent as `Authorization: Bearer pw_...`",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "An owner of devices: an employee, temp, intern or contractor",
        "schema": CORE_USER,
        "schemaExtensions": [
            {"schema": ENTERPRISE_USER, "required": false},
            {"schema": POORTWACHTER_USER, "required": false}
        ],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
    })
}

/// `/ResourceTypes`: User only.
pub fn resource_types(base: &str) -> Value {
    list(vec![user_resource_type(base)])
}

/// `/ResourceTypes/{id}`.
pub fn resource_type(base: &str, id: &str) -> Option<Value> {
    id.eq_ignore_ascii_case("User")
        .then(|| user_resource_type(base))
}

fn attr(name: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": false, "description": description,
        "required": false, "caseExact": false, "mutability": "readWrite",
        "returned": "default", "uniqueness": "none"
    })
}

fn with(mut a: Value, extra: Value) -> Value {
    if let (Some(a), Value::Object(extra)) = (a.as_object_mut(), extra) {
        a.extend(extra);
    }
    a
}

fn schemas_of(base: &str) -> Vec<Value> {
    let core = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": CORE_USER,
        "name": "User",
        "description": "User Account",
        "attributes": [
            with(attr("userName", "string", "The username in the registry (1-64 of A-Z a-z 0-9 . _ - @); cannot change once provisioned"),
                json!({"required": true, "uniqueness": "server"})),
            attr("displayName", "string", "The full name shown for the owner"),
            with(attr("name", "complex", "formatted is used when displayName is absent; then givenName familyName"),
                json!({"subAttributes": [
                    attr("formatted", "string", "The full name"),
                    attr("givenName", "string", "Given name"),
                    attr("familyName", "string", "Family name")
                ]})),
            with(attr("emails", "complex", "The primary address (else the work one, else the first) is the owner's mail address"),
                json!({"multiValued": true, "subAttributes": [
                    attr("value", "string", "Mail address"),
                    attr("type", "string", "work, home, other"),
                    attr("primary", "boolean", "The address used")
                ]})),
            attr("active", "boolean", "false disables the owner: every device refused, sessions disconnected"),
            attr("userType", "string", "The role: Employee (or Staff, Member, Medewerker) = staff; Intern (Stagiair); Temp (Temporary, Uitzendkracht); Contractor (External, Extern). Absent: staff"),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{CORE_USER}")}
    });
    let enterprise = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": ENTERPRISE_USER,
        "name": "EnterpriseUser",
        "description": "Enterprise User",
        "attributes": [attr("department", "string", "The owner's department")],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{ENTERPRISE_USER}")}
    });
    let ours = json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": POORTWACHTER_USER,
        "name": "PoortwachterUser",
        "description": "The contract period that bounds network access",
        "attributes": [
            attr("validFrom", "string", "First day of access, YYYY-MM-DD (a dateTime is read as its date)"),
            attr("validUntil", "string", "Last day of access, YYYY-MM-DD (a dateTime is read as its date); required unless the role is staff")
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{POORTWACHTER_USER}")}
    });
    vec![core, enterprise, ours]
}

/// `/Schemas`.
pub fn schemas(base: &str) -> Value {
    list(schemas_of(base))
}

/// `/Schemas/{id}`.
pub fn schema(base: &str, id: &str) -> Option<Value> {
    schemas_of(base)
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
}

/// A ListResponse of all `resources` (one page).
pub fn list(resources: Vec<Value>) -> Value {
    let n = resources.len();
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": n,
        "startIndex": 1,
        "itemsPerPage": n,
        "Resources": resources
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents() {
        let base = "https://nac.example/scim/v2";
        let spc = service_provider_config(base);
        assert_eq!(spc["patch"]["supported"], true);
        assert_eq!(spc["filter"]["maxResults"], MAX_RESULTS);
        let rt = resource_types(base);
        assert_eq!(rt["totalResults"], 1);
        assert_eq!(rt["Resources"][0]["endpoint"], "/Users");
        assert!(resource_type(base, "user").is_some());
        assert!(resource_type(base, "Group").is_none());
        let s = schemas(base);
        assert_eq!(s["totalResults"], 3);
        assert_eq!(schema(base, CORE_USER).unwrap()["name"], "User");
        assert!(schema(base, "urn:x").is_none());
    }
}
