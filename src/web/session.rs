//! Signing in to the pages: a token is typed once, then a server-side session stands for it.
//!
//! - The cookie holds only a random session id: `HttpOnly` (no script reads it),
//!   `SameSite=Strict` (no other site's page sends it), `Path=/`. The session ends after
//!   [`IDLE`] without a request, after [`LIFETIME`] in any case, at sign-out, and as soon as
//!   its token is revoked (the token's digest is checked on every request).
//! - Every form carries the session's CSRF token; the sign-in form carries one tied to a
//!   short-lived pre-session cookie.
//! - Failed sign-ins from one address are counted; after [`FREE_FAILURES`] each answer waits
//!   longer, and after [`LOCKOUT_FAILURES`] the address is refused for [`LOCKOUT`].

use crate::storage::tokens::Principal;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "kiroku_session";
pub const LOGIN_COOKIE: &str = "kiroku_login";
pub const IDLE: Duration = Duration::from_secs(60 * 60);
pub const LIFETIME: Duration = Duration::from_secs(10 * 60 * 60);
pub const FREE_FAILURES: u32 = 3;
pub const LOCKOUT_FAILURES: u32 = 10;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// A random identifier: 256 bits, URL-safe.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
pub struct WebSession {
    pub principal: Principal,
    /// The digest of the token signed in with, checked against the token store each time.
    pub token_digest: String,
    pub csrf: String,
    started: Instant,
    last_seen: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    last: Option<Instant>,
}

/// Sessions and sign-in failures, in memory: a restart signs everyone out.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, WebSession>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// What a failed sign-in costs the address.
pub enum Throttle {
    /// Answer after this pause.
    Wait(Duration),
    /// Refuse outright for this long.
    Locked(Duration),
}

impl Sessions {
    /// Starts a session; returns its id.
    pub fn start(&self, principal: Principal, token_digest: String) -> String {
        let id = random_id();
        let now = Instant::now();
        let session = WebSession {
            principal,
            token_digest,
            csrf: random_id(),
            started: now,
            last_seen: now,
        };
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| !expired(s, now));
            sessions.insert(id.clone(), session);
        }
        id
    }

    /// The live session with this id, its idle clock restarted.
    pub fn get(&self, id: &str) -> Option<WebSession> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().ok()?;
        match sessions.get_mut(id) {
            Some(session) if !expired(session, now) => {
                session.last_seen = now;
                Some(session.clone())
            }
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(id);
        }
    }

    /// Whether `address` is locked out now.
    pub fn locked(&self, address: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().ok()?;
        let entry = failures.get(&address)?;
        let last = entry.last?;
        (entry.count >= LOCKOUT_FAILURES && last.elapsed() < LOCKOUT)
            .then(|| LOCKOUT.saturating_sub(last.elapsed()))
    }

    /// Counts a failed sign-in from `address`.
    pub fn failed(&self, address: IpAddr) -> Throttle {
        let Ok(mut failures) = self.failures.lock() else {
            return Throttle::Locked(LOCKOUT);
        };
        let entry = failures.entry(address).or_default();
        if entry.last.is_some_and(|last| last.elapsed() >= LOCKOUT) {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = Some(Instant::now());
        if entry.count >= LOCKOUT_FAILURES {
            Throttle::Locked(LOCKOUT)
        } else if entry.count > FREE_FAILURES {
            Throttle::Wait(Duration::from_secs(u64::from(entry.count - FREE_FAILURES)))
        } else {
            Throttle::Wait(Duration::from_millis(200))
        }
    }

    /// Forgets the failures of `address` after a successful sign-in.
    pub fn succeeded(&self, address: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&address);
        }
    }
}

fn expired(session: &WebSession, now: Instant) -> bool {
    now.duration_since(session.last_seen) > IDLE || now.duration_since(session.started) > LIFETIME
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// `Set-Cookie` for a session id (or for removing it, with an empty id).
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let header = "a=1; kiroku_session=abc; b=2";
        assert_eq!(cookie(header, COOKIE), Some("abc"));
        assert_eq!(cookie(header, "c"), None);
    }

    #[test]
    fn failures_slow_then_lock_an_address() {
        let sessions = Sessions::default();
        let address: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..FREE_FAILURES {
            assert!(
                matches!(sessions.failed(address), Throttle::Wait(d) if d < Duration::from_secs(1))
            );
        }
        assert!(
            matches!(sessions.failed(address), Throttle::Wait(d) if d >= Duration::from_secs(1))
        );
        for _ in FREE_FAILURES + 1..LOCKOUT_FAILURES - 1 {
            sessions.failed(address);
        }
        assert!(matches!(sessions.failed(address), Throttle::Locked(_)));
        assert!(sessions.locked(address).is_some());
        sessions.succeeded(address);
        assert!(sessions.locked(address).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
