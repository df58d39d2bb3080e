//! The page shell: language, skip link, header with navigation and who is logged in, the
//! content in `main`, and small pieces every page uses.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::session::{Role, Session};
use super::text::Texts;

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The dashboard.
    Dashboard,
    /// Search and the owner and device pages.
    Search,
    /// The refusals.
    Refusals,
    /// The audit log.
    Audit,
    /// Occupancy.
    Occupancy,
    /// The API tokens (ICT only).
    Tokens,
    /// None (login, errors).
    None,
}

/// A whole console page.
pub fn page(
    t: &Texts,
    title: &str,
    session: Option<&Session>,
    nav: Nav,
    here: &str,
    content: Markup,
) -> Markup {
    let header = html! {
        @if let Some(s) = session {
            nav aria-label=(t.console) {
                ul {
                    (nav_item("/", t.nav_dashboard, nav == Nav::Dashboard))
                    (nav_item("/search", t.nav_search, nav == Nav::Search))
                    (nav_item("/refusals", t.nav_refusals, nav == Nav::Refusals))
                    (nav_item("/occupancy", t.nav_occupancy, nav == Nav::Occupancy))
                    (nav_item("/audit", t.nav_audit, nav == Nav::Audit))
                    @if s.role == Role::Admin {
                        (nav_item("/tokens", super::text::manage_texts(t.lang).nav_tokens, nav == Nav::Tokens))
                    }
                }
            }
            div.who {
                span { (t.logged_in_as) " " strong { (s.display_name) } " (" (role_name(t, s.role)) ")" }
                (language_link(t, here))
                (logout_form(t, s))
            }
        } @else {
            div.who { (language_link(t, here)) }
        }
    };
    shell(t, title, t.console, header, content)
}

/// The frame of every page of the console and the portal: language, skip link, the header
/// (the site's name and `header`), the title and `content` in `main`.
pub fn shell(t: &Texts, title: &str, site: &str, header: Markup, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(t.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (site) }
                link rel="stylesheet" href="/static/app.css";
            }
            body {
                a.skip href="#inhoud" { (t.skip_to_content) }
                header.top {
                    a.brand href="/" { (site) }
                    (header)
                }
                main #inhoud tabindex="-1" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The switch to the other language, back to `here`.
pub fn language_link(t: &Texts, here: &str) -> Markup {
    let other = match t.lang {
        crate::lang::Lang::Nl => "en",
        crate::lang::Lang::En => "nl",
    };
    html! {
        a href={ "/language?to=" (other) "&back=" (urlencode(here)) } lang=(other) { (t.other_language) }
    }
}

/// The logout button (a form with the session's CSRF token).
pub fn logout_form(t: &Texts, s: &Session) -> Markup {
    html! {
        form method="post" action="/logout" {
            (csrf_field(s))
            button type="submit" { (t.logout) }
        }
    }
}

fn nav_item(href: &str, label: &str, current: bool) -> Markup {
    html! {
        li {
            @if current {
                a href=(href) aria-current="page" { strong { (label) } }
            } @else {
                a href=(href) { (label) }
            }
        }
    }
}

/// A role's name.
pub fn role_name(t: &Texts, role: Role) -> &'static str {
    match role {
        Role::Admin => t.role_admin,
        Role::Helpdesk => t.role_helpdesk,
        Role::Employee => t.role_employee,
    }
}

/// A notice (error or confirmation).
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { div class={ "notice " (kind) } role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

/// A time in the municipality's zone, to the minute.
pub fn when(at: DateTime<Utc>, tz: &chrono_tz::Tz) -> String {
    at.with_timezone(tz).format("%d-%m-%Y %H:%M").to_string()
}

/// A time in the municipality's zone, to the second.
pub fn when_s(at: DateTime<Utc>, tz: &chrono_tz::Tz) -> String {
    at.with_timezone(tz).format("%d-%m-%Y %H:%M:%S").to_string()
}

/// Percent-encoding for a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A hidden CSRF field for a form.
pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            urlencode("/owners/j.de vries?x=1&y"),
            "/owners/j.de%20vries%3Fx%3D1%26y"
        );
        assert_eq!(urlencode("privé"), "priv%C3%A9");
    }
}
