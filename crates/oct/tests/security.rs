//! Security guarantees of the OCT (docs/security.md): the key file's permissions are checked
//! when the keys load, and a configured SMTP password never reaches Debug output or JSON.

mod pipeline_common;

use std::os::unix::fs::PermissionsExt;

use pipeline_common::{World, config_text};
use svoct_oct::config::Config;
use svoct_oct::pipeline::{Keys, PipelineError};

#[test]
fn oct_refuses_a_world_readable_key_file() {
    let w = World::new(2525, "");
    let key = w.dir.path().join("oct.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = match Keys::load(&w.config()) {
        Ok(_) => panic!("a 0644 key must be refused"),
        Err(e) => e,
    };
    assert!(matches!(err, PipelineError::Key { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("oct.key"), "{text}");
    // And 0600 is accepted.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Keys::load(&w.config()).is_ok());
}

#[test]
fn smtp_password_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), 2525, "").replace(
        "port = 2525\n",
        "port = 2525\nusername = \"oct\"\npassword = \"pa55-very-secret\"\n",
    );
    let config = Config::parse(&text).expect("config parses");
    let smtp = config.delivery.smtp.as_ref().expect("smtp settings");
    assert_eq!(
        smtp.password.as_ref().expect("password").expose(),
        "pa55-very-secret"
    );
    let debug = format!("{config:?}");
    assert!(!debug.contains("pa55-very-secret"), "{debug}");
    let json = serde_json::to_string(&config).unwrap();
    assert!(!json.contains("pa55-very-secret"), "{json}");
    assert!(json.contains("[redacted]"), "{json}");
}
