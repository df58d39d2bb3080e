//! The OpenAPI 3.1 document of the API, written by hand next to the routes it describes
//! (`tests/api.rs` checks that every route is in it).

use serde_json::{json, Value};

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true,
           "description": "Device id, its first 4+ hex digits, or one of its MAC addresses",
           "schema": {"type": "string"}})
}

fn username_param() -> Value {
    json!({"name": "username", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema,
           "description": description})
}

fn paging() -> Vec<Value> {
    vec![
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
            "Page size",
        ),
        query(
            "offset",
            json!({"type": "integer", "minimum": 0, "default": 0}),
            "Items to skip",
        ),
    ]
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn page_of(item: &str) -> Value {
    json!({"type": "object", "properties": {
        "items": {"type": "array", "items": reference(item)},
        "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "total": {"type": "integer"}, "next_offset": {"type": ["integer", "null"]}}})
}

fn items_of(item: &str) -> Value {
    json!({"type": "object", "properties": {"items": {"type": "array", "items": reference(item)}}})
}

fn body(schema: &str, required: bool) -> Value {
    json!({"required": required,
           "content": {"application/json": {"schema": reference(schema)}}})
}

/// Errors every authenticated operation may answer, plus `extra`.
fn errors(extra: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    let error = |d: &str| ok(d, reference("Error"));
    out.insert(
        "401".into(),
        error("No token, or an unknown or revoked one"),
    );
    out.insert("403".into(), error("The token's scope does not allow this"));
    for code in extra {
        let d = match *code {
            "400" => "A bad body or parameter; `field` names it. Nothing was written.",
            "404" => "No such owner or device",
            "409" => "Refused by the registry rules (duplicate, limit, lifecycle)",
            "413" => "The body is larger than api.max_body",
            "415" => "The body is not JSON",
            "501" => "Not available on this server",
            "503" => "A resource the operation needs is not available",
            _ => "Error",
        };
        out.insert((*code).into(), error(d));
    }
    Value::Object(out)
}

fn op(summary: &str, scope: &str, params: Vec<Value>, responses: Value) -> Value {
    json!({"summary": summary, "description": format!("Scope: {scope}."),
           "parameters": params, "responses": responses})
}

fn write_op(
    summary: &str,
    scope: &str,
    params: Vec<Value>,
    request: Value,
    success: (&str, Value),
    extra: &[&str],
) -> Value {
    let mut responses = errors(&[&["400", "413", "415"], extra].concat());
    responses[success.0] = success.1;
    let mut o = op(summary, scope, params, responses);
    o["requestBody"] = request;
    o
}

fn merge(a: Value, b: Value) -> Value {
    let mut a = a;
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// The document: the admin API under `/api/v1`, and the SCIM routes under `/scim/v2`.
pub fn document() -> Value {
    let mut doc = v1_document();
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.extend(scim_paths());
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.extend(scim_schemas());
    }
    doc
}

fn v1_document() -> Value {
    let read = "helpdesk or admin";
    let write = "admin";
    let device = |summary: &str, schema: &str, required: bool| {
        json!({"post": write_op(summary, write, vec![id_param()], body(schema, required),
            ("200", ok("The device after the change", reference("Device"))), &["404", "409"])})
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "poortwachter admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Owners, devices, compliance, sessions, decisions and the audit log \
                of the BYOD Wi-Fi registry. Every change is written to the audit log with the \
                actor `api:<token name>`. Tokens are made with `poortwachter token create`."
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/health": {"get": {"summary": "Liveness", "security": [],
                "responses": {"200": ok("Up", json!({"type": "object"}))}}},
            "/ready": {"get": {"summary": "Readiness: 503 `degraded` while the registry database cannot be read (RADIUS then answers from last-known-good data)", "security": [],
                "responses": {"200": ok("Ready", json!({"type": "object"})), "503": ok("Degraded, with since and why", json!({"type": "object"}))}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                "responses": {"200": ok("OpenAPI 3.1", json!({"type": "object"}))}}},
            "/owners": {
                "get": op("List owners", read, [vec![
                    query("search", json!({"type": "string", "maxLength": 200}), "Words that must each occur (any case) in the username, name or e-mail address"),
                    query("role", json!({"enum": ["staff", "temp", "intern", "contractor"]}), "Only this role"),
                    query("source", json!({"enum": ["manual", "import", "directory", "scim"]}), "Only owners managed by this source"),
                    query("disabled", json!({"type": "boolean"}), "Only disabled (true) or enabled (false) owners"),
                ], paging()].concat(), merge(json!({"200": ok("A page of owners", page_of("Owner"))}), errors(&["400"]))),
                "post": write_op("Add an owner", write, vec![], body("NewOwner", true),
                    ("201", ok("The owner", reference("Owner"))), &["409"]),
            },
            "/owners/{username}": {
                "get": op("One owner", read, vec![username_param()],
                    merge(json!({"200": ok("The owner", reference("Owner"))}), errors(&["404"]))),
                "patch": write_op("Change an owner's details (a merge patch: a field left out stays, null clears it); the username never changes", write,
                    vec![username_param()], body("OwnerPatch", true), ("200", ok("The owner after the change", reference("Owner"))), &["404"]),
                "delete": merge(op("Delete an owner registered by mistake; refused (409) while they have devices: a leaver is disabled instead", write,
                    vec![username_param()], errors(&["404", "409"])), json!({"responses": merge(errors(&["404", "409"]), json!({"204": {"description": "Deleted; the audit log keeps the record"}}))})),
            },
            "/owners/{username}/export": {"get": op("Everything held about the person, as one document (AVG art. 15): owner, devices, certificates, posture reports, sessions, decisions, Disconnect/CoA requests, audit entries", "admin",
                vec![username_param()], merge(json!({"200": ok("The export", json!({"type": "object"}))}), errors(&["404"])))},
            "/owners/{username}/erase": {"post": write_op("Erase a person who has left, now (AVG art. 17): name, e-mail, username, MACs, sessions and decisions go; the audit log keeps what happened, not to whom. Cannot be undone; 409 while the owner is enabled and under contract", write,
                vec![username_param()], body("Erase", true), ("200", ok("The owner row as it remains", reference("Owner"))), &["404", "409"])},
            "/owners/{username}/disable": {"post": write_op("Disable an owner (all their devices are refused, their sessions disconnected)", write,
                vec![username_param()], body("Disable", false), ("200", ok("The owner", reference("Owner"))), &["404"])},
            "/owners/{username}/enable": {"post": write_op("Enable an owner again", write,
                vec![username_param()], body("Empty", false), ("200", ok("The owner", reference("Owner"))), &["404"])},
            "/devices": {
                "get": op("List devices", read, [vec![
                    query("owner", json!({"type": "string"}), "Only this owner's"),
                    query("status", json!({"enum": ["active", "lost", "revoked"]}), "Only this status"),
                    query("compliance", json!({"enum": ["unknown", "compliant", "noncompliant"]}), "Only this compliance state"),
                    query("expiring_within", json!({"type": "integer", "minimum": 0}), "Days: only active devices whose certificate ends within them (or has ended), soonest first"),
                ], paging()].concat(), merge(json!({"200": ok("A page of devices", page_of("Device"))}), errors(&["400", "404"]))),
                "post": write_op("Register a device", write, vec![], body("NewDevice", true),
                    ("201", ok("The device, and warnings (randomized MACs)", json!({"type": "object", "properties": {
                        "device": reference("Device"), "warnings": {"type": "array", "items": {"type": "string"}}}}))),
                    &["404", "409"]),
            },
            "/devices/{id}": {
                "get": op("One device, with its certificates", read, vec![id_param()],
                    merge(json!({"200": ok("The device", reference("Device"))}), errors(&["400", "404"]))),
                "patch": write_op("Change a device's label, kind or MACs (it keeps its id, certificate and history; a removed MAC is free again)", write,
                    vec![id_param()], body("DevicePatch", true), ("200", ok("The device after the change", reference("Device"))), &["404", "409"]),
                "delete": merge(op("Delete a device with its MACs, certificates and posture reports; refused (409) while a certificate of it is valid (it stays on the CRL: revoke now, delete after)", write,
                    vec![id_param()], errors(&["400", "404", "409"])), json!({"responses": merge(errors(&["400", "404", "409"]), json!({"204": {"description": "Deleted; the audit log keeps the record"}}))})),
            },
            "/devices/{id}/revoke": device("Revoke a device for good", "Revoke", true),
            "/devices/{id}/lost": device("Report a device lost", "Lost", false),
            "/devices/{id}/found": device("A lost device is found", "Empty", false),
            "/devices/{id}/compliance": {
                "post": write_op("Record a compliance check", write, vec![id_param()], body("Compliance", true),
                    ("200", ok("The device", reference("Device"))), &["404"]),
                "put": write_op("Record a compliance check", write, vec![id_param()], body("Compliance", true),
                    ("200", ok("The device", reference("Device"))), &["404"]),
            },
            "/devices/{id}/certificate": {"post": write_op(
                "Issue an EAP-TLS certificate and the device's bundle (supersedes the previous certificate): the PKCS#12, the CA, each system's profile (Windows WLAN profile and installer, signed Apple .mobileconfig, NetworkManager script) and instructions in Dutch and English", write, vec![id_param()],
                body("IssueCertificate", false), ("201", ok("The bundle and its one-time password, shown once",
                    reference("IssuedCertificate"))), &["404", "409", "503"])},
            "/devices/{id}/posture": {"post": write_op(
                "Submit a posture report from an MDM or agent", "posture or admin", vec![id_param()],
                body("PostureReport", true),
                ("200", ok("The evaluation: the device's compliance now and the checks that failed",
                    reference("PostureOutcome"))), &["404", "409"])},
            "/sessions": {"get": op("Accounting sessions, newest first", read, vec![
                query("active", json!({"type": "boolean"}), "Only sessions that have not stopped"),
                query("mac", json!({"type": "string"}), "Only this device MAC"),
                query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}), "How many"),
            ], merge(json!({"200": ok("Sessions", items_of("Session"))}), errors(&["400"])))},
            "/decisions": {"get": op("Access decisions, newest first", read, vec![
                query("mac", json!({"type": "string"}), "Only this MAC"),
                query("username", json!({"type": "string"}), "Only devices of this owner"),
                query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}), "How many"),
            ], merge(json!({"200": ok("Decisions; with `mac`, also the minute counts of requests for unregistered devices whose MAC sample holds it (`counted`)",
                json!({"type": "object", "properties": {
                    "items": {"type": "array", "items": reference("Decision")},
                    "counted": {"type": "array", "items": reference("DecisionAggregate")}}}))}), errors(&["400"])))},
            "/metrics": {"get": {"summary": "RADIUS counters (accepts, rejects, challenges, drops by reason) and the EAP conversation table, in the Prometheus text format; served by `poortwachter serve`",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "401": {"description": "No or a bad token"}, "404": {"description": "No RADIUS server in this process"}}}},
            "/audit": {"get": op("The audit log, newest first", read, vec![
                query("target", json!({"type": "string"}), "Only this username, device id or token name"),
                query("by", json!({"type": "string"}), "Only this actor (`api:<token>` for the API)"),
                query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}), "Page size"),
                query("offset", json!({"type": "integer", "minimum": 0, "default": 0}), "Entries to skip"),
            ], merge(json!({"200": ok("A page of entries", page_of("AuditEntry"))}), errors(&["400"])))},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "A token from `poortwachter token create --scope admin|helpdesk|posture|scim`: helpdesk reads, admin reads and writes, posture only posts posture reports, scim only provisions owners at /scim/v2 (and only scim reaches /scim/v2)."}},
            "schemas": schemas(),
        }
    })
}

fn scim_content(schema: &str) -> Value {
    json!({"application/scim+json": {"schema": reference(schema)}})
}

fn scim_ok(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": scim_content(schema)})
}

/// A SCIM operation: scope scim, errors as SCIM Error (`extra` status codes besides 401/403).
fn scim_op(summary: &str, params: Vec<Value>, success: (&str, Value), extra: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(success.0.into(), success.1);
    for (code, d) in [
        ("401", "No token, or an unknown or revoked one"),
        ("403", "The token's scope is not scim"),
    ]
    .into_iter()
    .chain(extra.iter().map(|c| {
        (
            *c,
            match *c {
                "400" => "scimType invalidValue, invalidSyntax, invalidFilter, invalidPath, noTarget or mutability; nothing was written",
                "404" => "No such User, or one SCIM does not manage (added by hand or by the directory sync), or deleted",
                "409" => "scimType uniqueness: the userName is in use",
                "413" => "The body is larger than api.max_body",
                "415" => "The body is not JSON",
                _ => "Error",
            },
        )
    })) {
        responses.insert(code.into(), scim_ok(d, "ScimError"));
    }
    json!({"summary": summary, "description": "Scope: scim. SCIM 2.0 (RFC 7644); the audit actor is `scim:<token name>`.",
           "parameters": params, "responses": responses})
}

fn scim_body(schema: &str) -> Value {
    json!({"required": true, "content": scim_content(schema)})
}

fn with_body(mut op: Value, schema: &str) -> Value {
    op["requestBody"] = scim_body(schema);
    op
}

/// The SCIM routes, at the server root (`servers` overridden per path).
fn scim_paths() -> serde_json::Map<String, Value> {
    let root = json!([{"url": "/"}]);
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"},
                    "description": "The User's id (the owner's id)"});
    let user = |d: &str| scim_ok(d, "ScimUser");
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, ops: Value| {
        let mut item = ops;
        item["servers"] = root.clone();
        paths.insert(format!("/scim/v2{path}"), item);
    };
    add(
        "/Users",
        json!({
            "get": scim_op("List or find Users (owners SCIM manages)", vec![
                query("filter", json!({"type": "string"}), "A SCIM filter, e.g. `userName eq \"j.devries\"` or `externalId eq \"...\"` (eq ne co sw ew gt ge lt le pr, and or not, attr[filter])"),
                query("startIndex", json!({"type": "integer", "minimum": 1, "default": 1}), "1-based index of the first result"),
                query("count", json!({"type": "integer", "minimum": 0, "maximum": 200, "default": 200}), "Results per page"),
            ], ("200", scim_ok("A ListResponse", "ScimListResponse")), &["400"]),
            "post": with_body(scim_op("Create a User: an owner with source scim (a userName SCIM deleted before comes back)", vec![],
                ("201", user("The User; Location names it")), &["400", "409", "413", "415"]), "ScimUser"),
        }),
    );
    add(
        "/Users/{id}",
        json!({
            "get": scim_op("One User", vec![id.clone()], ("200", user("The User")), &["404"]),
            "put": with_body(scim_op("Replace a User's attributes (userName cannot change)", vec![id.clone()],
                ("200", user("The User")), &["400", "404", "413", "415"]), "ScimUser"),
            "patch": with_body(scim_op("Change a User with a PatchOp (add, remove, replace; with or without path)", vec![id.clone()],
                ("200", user("The User")), &["400", "404", "413", "415"]), "ScimPatchOp"),
            "delete": scim_op("Delete a User: the owner is disabled (reason \"verwijderd via SCIM / deprovisioned\"), kept with history and certificates; their sessions are disconnected", vec![id.clone()],
                ("204", json!({"description": "Deleted"})), &["404"]),
        }),
    );
    let any = json!({"type": "object"});
    add(
        "/ServiceProviderConfig",
        json!({"get": scim_op("What this SCIM server supports", vec![],
        ("200", json!({"description": "ServiceProviderConfig", "content": {"application/scim+json": {"schema": any}}})), &[])}),
    );
    add(
        "/ResourceTypes",
        json!({"get": scim_op("The resource types (User)", vec![],
        ("200", scim_ok("A ListResponse of ResourceType", "ScimListResponse")), &[])}),
    );
    let named = |what: &str| json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": what});
    add(
        "/ResourceTypes/{id}",
        json!({"get": scim_op("One resource type", vec![named("User")],
        ("200", json!({"description": "ResourceType", "content": {"application/scim+json": {"schema": any}}})), &["404"])}),
    );
    add(
        "/Schemas",
        json!({"get": scim_op("The schemas: core User, enterprise User, poortwachter User", vec![],
        ("200", scim_ok("A ListResponse of Schema", "ScimListResponse")), &[])}),
    );
    add(
        "/Schemas/{id}",
        json!({"get": scim_op("One schema", vec![named("The schema URN")],
        ("200", json!({"description": "Schema", "content": {"application/scim+json": {"schema": any}}})), &["404"])}),
    );
    paths
}

fn scim_schemas() -> serde_json::Map<String, Value> {
    let s = json!({"type": "string"});
    let ext = |props: Value| json!({"type": "object", "properties": props});
    let schemas = json!({
        "ScimUser": {"type": "object", "required": ["userName"], "description": "A User as RFC 7643 §4.1 defines it; attributes not listed are accepted and ignored", "properties": {
            "schemas": {"type": "array", "items": s},
            "id": {"type": "string", "format": "uuid", "readOnly": true},
            "externalId": s, "userName": s, "displayName": s,
            "name": ext(json!({"formatted": s, "givenName": s, "familyName": s})),
            "emails": {"type": "array", "items": ext(json!({"value": s, "type": s, "primary": {"type": ["boolean", "string"]}}))},
            "active": {"type": ["boolean", "string"], "description": "true or false (a string \"True\"/\"False\" is read too)"},
            "userType": {"type": "string", "description": "Employee/Staff/Member/Medewerker = staff; Intern/Stagiair; Temp/Temporary/Uitzendkracht; Contractor/External/Extern. Absent: staff"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": ext(json!({"department": s})),
            "urn:poortwachter:params:scim:schemas:extension:2.0:User": ext(json!({
                "validFrom": {"type": "string", "description": "YYYY-MM-DD or a dateTime"},
                "validUntil": {"type": "string", "description": "YYYY-MM-DD or a dateTime; required unless staff"}})),
            "meta": {"type": "object", "readOnly": true, "properties": {"resourceType": s, "created": s, "lastModified": s, "location": s, "version": s}}}},
        "ScimListResponse": {"type": "object", "properties": {
            "schemas": {"type": "array", "items": s}, "totalResults": {"type": "integer"},
            "startIndex": {"type": "integer"}, "itemsPerPage": {"type": "integer"},
            "Resources": {"type": "array", "items": {"type": "object"}}}},
        "ScimPatchOp": {"type": "object", "required": ["Operations"], "properties": {
            "schemas": {"type": "array", "items": {"const": "urn:ietf:params:scim:api:messages:2.0:PatchOp"}},
            "Operations": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["op"], "properties": {
                "op": {"type": "string", "description": "add, remove or replace (any case)"},
                "path": s, "value": {}}}}}},
        "ScimError": {"type": "object", "required": ["schemas", "status"], "properties": {
            "schemas": {"type": "array", "items": {"const": "urn:ietf:params:scim:api:messages:2.0:Error"}},
            "status": {"type": "string"}, "scimType": s, "detail": s}},
    });
    match schemas {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn schemas() -> Value {
    let s = json!({"type": "string"});
    let opt_s = json!({"type": ["string", "null"]});
    let date = json!({"type": ["string", "null"], "format": "date"});
    let time = json!({"type": "string", "format": "date-time"});
    let opt_time = json!({"type": ["string", "null"], "format": "date-time"});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": s, "field": {"type": "string", "description": "The request field at fault, when known"}}},
        "Empty": {"type": "object", "additionalProperties": false},
        "NewOwner": {"type": "object", "additionalProperties": false,
            "required": ["username", "display_name", "role"], "properties": {
            "username": s, "display_name": s, "email": opt_s,
            "role": {"enum": ["staff", "temp", "intern", "contractor"]},
            "department": opt_s, "valid_from": date,
            "valid_until": merge(date.clone(), json!({"description": "Required unless role is staff"}))}},
        "Owner": {"type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"}, "username": s, "display_name": s,
            "email": opt_s, "role": s, "department": opt_s, "valid_from": date, "valid_until": date,
            "disabled": {"type": "boolean"}, "created_at": time, "updated_at": time,
            "source": {"enum": ["manual", "import", "directory", "scim"], "description": "What manages the record; a feed leaves owners of another source (added by hand) alone"},
            "external_id": opt_s, "disabled_reason": opt_s, "disabled_at": opt_time,
            "disabled_by_source": {"type": ["string", "null"], "description": "The feed that disabled the owner (it enables them again when they return); null when disabled by hand"}}},
        "OwnerPatch": {"type": "object", "additionalProperties": false, "minProperties": 1, "properties": {
            "display_name": s, "email": opt_s, "role": {"enum": ["staff", "temp", "intern", "contractor"]},
            "department": opt_s, "valid_from": date, "valid_until": date,
            "source": {"enum": ["manual", "import", "directory", "scim"]}}},
        "Erase": {"type": "object", "additionalProperties": false, "required": ["confirm"], "properties": {
            "confirm": merge(s.clone(), json!({"description": "The username again"}))}},
        "Disable": {"type": "object", "additionalProperties": false, "properties": {
            "reason": merge(opt_s.clone(), json!({"maxLength": 500, "description": "Why, as the service desk will read it"}))}},
        "DevicePatch": {"type": "object", "additionalProperties": false, "properties": {
            "label": s, "kind": {"enum": ["laptop", "tablet", "phone", "other"]},
            "add_macs": {"type": "array", "items": s, "maxItems": 8},
            "remove_macs": {"type": "array", "items": s, "maxItems": 8}}},
        "NewDevice": {"type": "object", "additionalProperties": false,
            "required": ["owner", "macs", "label"], "properties": {
            "owner": s, "macs": {"type": "array", "items": s, "minItems": 1, "maxItems": 8},
            "label": s, "kind": {"enum": ["laptop", "tablet", "phone", "other"], "default": "laptop"}}},
        "Device": {"type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"}, "owner_id": {"type": "string", "format": "uuid"},
            "owner": s, "label": s, "kind": s, "macs": {"type": "array", "items": s},
            "status": {"enum": ["active", "lost", "revoked"]}, "status_reason": opt_s,
            "status_changed_at": opt_time, "compliance": {"enum": ["unknown", "compliant", "noncompliant"]},
            "compliance_checked_at": opt_time, "compliance_note": opt_s,
            "cert_fingerprint": opt_s, "cert_serial": opt_s, "created_by": s,
            "created_at": time, "updated_at": time, "last_seen_at": opt_time,
            "last_seen_nas": opt_s, "last_seen_ssid": opt_s}},
        "Revoke": {"type": "object", "additionalProperties": false, "required": ["reason"],
            "properties": {"reason": s}},
        "Lost": {"type": "object", "additionalProperties": false, "properties": {"reason": opt_s}},
        "Compliance": {"type": "object", "additionalProperties": false, "required": ["state"],
            "properties": {"state": {"enum": ["unknown", "compliant", "noncompliant"]},
                "note": merge(opt_s.clone(), json!({"maxLength": 500}))}},
        "IssueCertificate": {"type": "object", "additionalProperties": false, "properties": {
            "os": {"type": "array", "items": {"enum": ["windows", "apple", "android", "linux"]},
                "description": "For which systems the bundle is made (all when absent)"}}},
        "IssuedCertificate": {"type": "object", "properties": {
            "device": {"type": "string", "format": "uuid"}, "owner": s, "serial": s,
            "fingerprint": s, "not_before": time, "not_after": time,
            "capped_by_contract": {"type": "boolean"},
            "pkcs12": {"type": "string", "contentEncoding": "base64"},
            "password": s, "ca_pem": s,
            "files": {"type": "array", "items": {"type": "object", "properties": {
                "name": s, "media_type": s,
                "private": {"type": "boolean", "description": "Holds the device's key"},
                "content": {"type": "string", "contentEncoding": "base64"}}}},
            "warnings": {"type": "array", "items": s}}},
        "PostureReport": {"type": "object", "additionalProperties": false,
            "required": ["os_name", "os_version"], "properties": {
            "os_name": s, "os_version": s,
            "pending_updates": {"type": ["integer", "null"], "minimum": 0},
            "antivirus_enabled": {"type": ["boolean", "null"]},
            "antivirus_signatures_updated": opt_time,
            "firewall_enabled": {"type": ["boolean", "null"]},
            "disk_encrypted": {"type": ["boolean", "null"]},
            "screen_lock": {"type": ["boolean", "null"]},
            "collected_at": opt_time, "source": opt_s}},
        "PostureOutcome": {"type": "object", "properties": {
            "device_id": {"type": "string", "format": "uuid"},
            "compliance": {"enum": ["compliant", "noncompliant"]},
            "failed": {"type": "array", "items": {"type": "object", "properties": {
                "check": s, "message": s}}},
            "report_id": {"type": "integer"},
            "previous": {"enum": ["compliant", "noncompliant", "unknown"]},
            "applied": {"type": "boolean"}}},
        "Session": {"type": "object"},
        "Decision": {"type": "object"},
        "DecisionAggregate": {"type": "object", "description": "Requests for unregistered devices in one minute, per client, access point (`ap`), method, outcome and reason: `count`, and the first 32 distinct `macs`"},
        "AuditEntry": {"type": "object", "properties": {
            "id": {"type": "integer"}, "at": time, "actor": s, "action": s,
            "target_type": s, "target_id": s, "before": {}, "after": {}}},
    })
}
