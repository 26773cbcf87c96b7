//! Runs a Python script that drives a real headless Chromium (selenium from `.ci/python-tools`,
//! Debian's chromium and chromedriver from `.ci/chromium`) and returns the JSON it prints: what
//! it saw, for the Rust test to check.

use serde_json::Value;
use std::time::Duration;

/// Runs `tests/it/<script>` with `env`, within `timeout`; its printed JSON.
pub async fn run_browser_script(script: &str, env: &[(&str, &str)], timeout: Duration) -> Value {
    assert!(
        std::path::Path::new("/usr/bin/chromedriver").exists(),
        "Chromium is missing: run .ci/chromium (apt-get install chromium chromium-driver)"
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it")
        .join(script);
    let mut command = tokio::process::Command::new(super::python_tools().join("python"));
    // No __pycache__ left beside the scripts.
    command.arg(path).env("PYTHONDONTWRITEBYTECODE", "1").kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let run = tokio::time::timeout(timeout, command.output())
        .await
        .unwrap_or_else(|_| panic!("the browser did not finish {script} within {timeout:?}"))
        .expect("run the browser script");
    assert!(
        run.status.success(),
        "the browser script {script} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&run.stdout).expect("the script's JSON")
}

/// The directory for a browser test's screenshots: `HOOKLINE_CONSOLE_SHOTS` when set (to keep
/// them, for docs/), else the temp dir `temp`.
pub fn shots_dir(temp: &tempfile::TempDir) -> std::path::PathBuf {
    std::env::var_os("HOOKLINE_CONSOLE_SHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf())
}

/// The CSRF token of a console or portal page's first form.
pub fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[at..].split('"').next().unwrap().to_string()
}

/// The `name=value` of an answer's `Set-Cookie`.
pub fn cookie_of(answer: &reqwest::Response) -> String {
    answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Signs in to the console at `base` with the admin token: the session's cookie.
pub async fn console_sign_in(base: &str) -> String {
    let signed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/console/sign-in"))
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", super::ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303, "signing in to the console");
    cookie_of(&signed)
}
