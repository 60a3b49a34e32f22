//! Who may use the console: the password file (`[http] users_file`), the sessions and the CSRF
//! tokens.
//!
//! - The file has one line per operator, `name:pbkdf2-sha256$ITERATIONS$SALT$HASH` (salt and
//!   hash in base64), written by `svoct oct console-user add NAME`. It holds what lets someone
//!   read health data, so it must be the service user's alone: a file readable by group or
//!   others, or missing, stops the service at start (and `oct check` says so).
//! - A login gets a random session token in a cookie (HttpOnly, SameSite=Strict, Secure under
//!   TLS) and a random CSRF token every form carries back; sessions live in memory (a restart
//!   logs everyone out) and expire.
//! - No password, hash, token or cookie value is ever logged or shown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use svoct_mail::secret::Secret;

/// PBKDF2 iterations of new hashes (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
pub const ITERATIONS: u32 = 600_000;
const SCHEME: &str = "pbkdf2-sha256";
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;
/// Bounds on what a stored line may ask of the verifier (a forged file cannot stall a login).
const MAX_ITERATIONS: u32 = 10_000_000;
const MAX_USERS_FILE_BYTES: u64 = 1 << 20;

/// Problems with the users file or a password.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path}: mode {mode:03o} lets others read it: chmod 600 (it holds the console's password hashes)"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path} line {line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("user name {0:?}: use letters, digits, '.', '_' or '-' (at most 64)")]
    BadName(String),
    #[error("empty password")]
    EmptyPassword,
    #[error("openssl: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether `name` is a user name the file and the logs can carry as is.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new stored hash of `password`, with a fresh random salt.
pub fn hash_password(password: &Secret<Vec<u8>>, iterations: u32) -> Result<String, AuthError> {
    let mut salt = [0u8; SALT_BYTES];
    openssl::rand::rand_bytes(&mut salt)?;
    let hash = derive(password.expose(), &salt, iterations)?;
    Ok(format!(
        "{SCHEME}${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    ))
}

fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Result<[u8; HASH_BYTES], AuthError> {
    let mut out = [0u8; HASH_BYTES];
    openssl::pkcs5::pbkdf2_hmac(
        password,
        salt,
        usize::try_from(iterations).unwrap_or(usize::MAX),
        openssl::hash::MessageDigest::sha256(),
        &mut out,
    )?;
    Ok(out)
}

/// A stored hash, parsed.
#[derive(Clone)]
struct Stored {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse_stored(text: &str) -> Result<Stored, String> {
    let mut parts = text.split('$');
    let (Some(SCHEME), Some(iter), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(format!("not a {SCHEME}$ITERATIONS$SALT$HASH value"));
    };
    let iterations: u32 = iter.parse().map_err(|_| "iterations: not a number".to_owned())?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(format!("iterations: between 1 and {MAX_ITERATIONS}"));
    }
    let salt = STANDARD.decode(salt).map_err(|_| "salt: not base64".to_owned())?;
    let hash = STANDARD.decode(hash).map_err(|_| "hash: not base64".to_owned())?;
    if hash.len() != HASH_BYTES || salt.is_empty() {
        return Err("salt or hash of the wrong length".to_owned());
    }
    Ok(Stored {
        iterations,
        salt,
        hash,
    })
}

/// The operators allowed in, loaded from the users file.
#[derive(Clone, Default)]
pub struct Users {
    users: HashMap<String, Stored>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").field("count", &self.users.len()).finish()
    }
}

/// Refuses a users file that group or others may read or write.
pub fn check_permissions(path: &Path) -> Result<(), AuthError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AuthError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<String, AuthError> {
    check_permissions(path)?;
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(io(path))?;
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_USERS_FILE_BYTES), &mut text)
        .map_err(io(path))?;
    Ok(text)
}

impl Users {
    /// Reads the users file: it must exist, be the owner's alone and parse.
    pub fn load(path: &Path) -> Result<Users, AuthError> {
        let text = read_file(path)?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |reason: String| AuthError::Syntax {
                path: path.to_owned(),
                line: n + 1,
                reason,
            };
            let (name, stored) = line
                .split_once(':')
                .ok_or_else(|| syntax("expected NAME:HASH".to_owned()))?;
            if !valid_name(name) {
                return Err(syntax(format!("user name {name:?} is not allowed")));
            }
            users.insert(name.to_owned(), parse_stored(stored).map_err(syntax)?);
        }
        Ok(Users { users })
    }

    /// How many operators.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is `name`'s. An unknown name costs a derivation too, so that timing
    /// does not tell which names exist.
    pub fn verify(&self, name: &str, password: &[u8]) -> bool {
        let dummy = Stored {
            iterations: ITERATIONS,
            salt: vec![0; SALT_BYTES],
            hash: vec![0; HASH_BYTES],
        };
        let (stored, known) = match self.users.get(name) {
            Some(s) => (s.clone(), true),
            None => (dummy, false),
        };
        let Ok(derived) = derive(password, &stored.salt, stored.iterations) else {
            return false;
        };
        openssl::memcmp::eq(&derived, &stored.hash) && known
    }
}

/// Adds `name` (or replaces its hash) in the users file, which is written whole to a
/// temporary 0600 file and renamed over the old one. Returns whether the name existed.
pub fn add_user(path: &Path, name: &str, password: &Secret<Vec<u8>>) -> Result<bool, AuthError> {
    if !valid_name(name) {
        return Err(AuthError::BadName(name.to_owned()));
    }
    if password.expose().is_empty() {
        return Err(AuthError::EmptyPassword);
    }
    let old = if path.exists() {
        read_file(path)?
    } else {
        String::new()
    };
    let hash = hash_password(password, ITERATIONS)?;
    let prefix = format!("{name}:");
    let existed = old.lines().any(|l| l.trim_start().starts_with(&prefix));
    let mut text: String = old
        .lines()
        .filter(|l| !l.trim_start().starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{name}:{hash}\n"));
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = svoct_mail::fsx::create_new_data_file(&tmp).map_err(io(&tmp))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(existed)
}

/// A random token, hex (sessions and CSRF).
fn token() -> Result<String, AuthError> {
    let mut b = [0u8; 32];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A logged-in operator.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    /// Every form of this session carries it back.
    pub csrf: String,
    expires: Instant,
}

/// The server-side session map.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `user`: returns its token (the cookie's value).
    pub fn open(&self, user: &str) -> Result<String, AuthError> {
        let now = Instant::now();
        let session = Session {
            user: user.to_owned(),
            csrf: token()?,
            expires: now + self.ttl,
        };
        let id = token()?;
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        map.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session of a token.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session (logout).
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Whether the token a form carried is the session's, compared in constant time.
pub fn csrf_ok(session: &Session, sent: &str) -> bool {
    sent.len() == session.csrf.len() && openssl::memcmp::eq(sent.as_bytes(), session.csrf.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn secret(s: &str) -> Secret<Vec<u8>> {
        Secret::new(s.as_bytes().to_vec())
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        assert!(!add_user(&path, "alice", &secret("correct horse")).expect("add"));
        assert!(add_user(&path, "alice", &secret("battery staple")).expect("replace"));
        add_user(&path, "bob", &secret("b0b")).expect("add");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let users = Users::load(&path).expect("load");
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", b"battery staple"));
        assert!(
            !users.verify("alice", b"correct horse"),
            "the old password is gone"
        );
        assert!(!users.verify("bob", b"battery staple"));
        assert!(!users.verify("carol", b"b0b"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("battery"), "{text}");
        let salts: Vec<&str> = text.lines().map(|l| l.split('$').nth(2).unwrap_or("")).collect();
        assert_ne!(salts[0], salts[1], "each hash has its own salt");
    }

    #[test]
    fn a_file_others_can_read_or_a_missing_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        assert!(matches!(Users::load(&path), Err(AuthError::Io { .. })));
        add_user(&path, "alice", &secret("pw")).expect("add");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = Users::load(&path).expect_err("group-readable");
        assert!(err.to_string().contains("mode 640"), "{err}");
        assert!(
            add_user(&path, "bob", &secret("pw")).is_err(),
            "not rewritten either"
        );
    }

    #[test]
    fn bad_lines_names_and_passwords_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        assert!(matches!(
            add_user(&path, "a:b", &secret("pw")),
            Err(AuthError::BadName(_))
        ));
        assert!(matches!(
            add_user(&path, "a", &secret("")),
            Err(AuthError::EmptyPassword)
        ));
        for bad in [
            "alice",
            "alice:plain",
            "alice:pbkdf2-sha256$0$AAAA$AAAA",
            "alice:pbkdf2-sha256$99999999999$AAAA$AAAA",
        ] {
            std::fs::write(&path, format!("{bad}\n")).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            assert!(
                matches!(Users::load(&path), Err(AuthError::Syntax { line: 1, .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn sessions_expire_close_and_check_their_csrf_token() {
        let sessions = Sessions::new(Duration::from_secs(3600));
        let id = sessions.open("alice").expect("open");
        let s = sessions.get(&id).expect("live");
        assert_eq!(s.user, "alice");
        assert!(csrf_ok(&s, &s.csrf));
        assert!(!csrf_ok(&s, ""));
        assert!(!csrf_ok(&s, &id), "the session token is not the CSRF token");
        assert!(sessions.get("nope").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        let expired = Sessions::new(Duration::ZERO);
        let id = expired.open("bob").expect("open");
        assert!(expired.get(&id).is_none(), "a session past its expiry is gone");
    }
}
