//! A throw-away Kubernetes v1.20 control plane for the end-to-end tests:
//! etcd, kube-apiserver and kube-controller-manager started by
//! `tests/apiserver/start.sh` (binaries built once by
//! `build-binaries.sh`, kubectl 1.20 from `kubectl.sh`), with kubectl as
//! the user.
//!
//! Two places to run it:
//!
//! - [`ControlPlane::start`]: in the test's own namespace, the API server on
//!   127.0.0.1 (the API server tests);
//! - [`ControlPlane::start_in`]: inside a lab namespace, the API server on
//!   one of that namespace's addresses (`APISERVER_BIND`), so that the
//!   other namespaces of the lab (the speakers' nodes) reach it over the
//!   lab's bridge; kubectl and the other scripts then run in that
//!   namespace too.
//!
//! Every kubectl call is bounded ([`KUBECTL_TIMEOUT`]). Dropping the handle
//! stops exactly the processes `start.sh` recorded (`stop.sh`), also while
//! a test panics; its state directory (certificates, etcd data, logs,
//! service-account kubeconfigs) goes with it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::bgp::wait_until;
use crate::netns::Netns;

/// How long one kubectl call may take (applying 1,000 Services at once
/// included).
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long `start.sh` and `restart.sh` may take (they wait up to 60 s for
/// the API server themselves; the first `start.sh` may also build the
/// binaries, see `build-binaries.sh`, which run-all.sh does beforehand).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Runs `command`, feeding it `input` on stdin when given; kills it and
/// panics after `timeout`. Collects stdout and stderr.
fn run(command: &mut Command, input: Option<&str>, timeout: Duration) -> Output {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {description}: {e}"));
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let text = text.to_owned();
        // A writer of its own: a large input must not block us while the
        // child fills its output pipes.
        thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("waiting for {description}: {e}"),
        Err(_) => {
            // SAFETY: kill(2) of our own child, which has not been reaped
            // (the waiting thread has not returned).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{description} did not finish within {timeout:?}");
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Decodes standard base64 (a Secret's `data`), skipping anything that is
/// not of its alphabet (padding, line breaks).
pub fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).expect("one byte"));
        }
    }
    out
}

/// A running control plane; stopped on drop. `'a` is the lab namespace it
/// runs in ([`ControlPlane::start_in`]).
#[derive(Debug)]
pub struct ControlPlane<'a> {
    ns: Option<&'a Netns>,
    state: tempfile::TempDir,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
}

impl ControlPlane<'static> {
    /// Starts it in the test's own namespace, the API server on 127.0.0.1.
    pub fn start() -> ControlPlane<'static> {
        ControlPlane::launch(None, None, "ferrolb-apiserver-")
    }
}

impl<'a> ControlPlane<'a> {
    /// Starts it inside `ns`, the API server on `bind` (an address of
    /// `ns`); kubectl runs in `ns` too.
    pub fn start_in(ns: &'a Netns, bind: &str) -> ControlPlane<'a> {
        ControlPlane::launch(Some(ns), Some(bind), "ferrolb-lab-api-")
    }

    fn launch(ns: Option<&'a Netns>, bind: Option<&str>, prefix: &str) -> ControlPlane<'a> {
        let state = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir");
        let script = workspace_root().join("tests/apiserver/start.sh");
        let mut command = match ns {
            Some(ns) => ns.command(&script),
            None => Command::new(&script),
        };
        command.arg(state.path());
        if let Some(bind) = bind {
            command.env("APISERVER_BIND", bind);
        }
        let out = run(&mut command, None, SCRIPT_TIMEOUT);
        let env = std::fs::read_to_string(state.path().join("env")).unwrap_or_default();
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(PathBuf::from)
                .unwrap_or_default()
        };
        // Made before checking, so that Drop stops whatever did start.
        let cp = ControlPlane {
            ns,
            kubeconfig: get("KUBECONFIG"),
            kubectl: get("KUBECTL"),
            state,
        };
        assert!(
            out.status.success(),
            "start.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cp
    }

    /// The cluster-admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The kubectl (1.20) it runs.
    pub fn kubectl_path(&self) -> &Path {
        &self.kubectl
    }

    /// The state directory (certificates, logs; tests may put files there).
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// `program` as a command in the control plane's namespace.
    fn command(&self, program: impl AsRef<Path>) -> Command {
        match self.ns {
            Some(ns) => ns.command(program),
            None => Command::new(program.as_ref()),
        }
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = self.command(&self.kubectl);
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        command
    }

    /// `kubectl ARGS` as cluster admin, whatever the outcome.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        run(&mut self.kubectl_command(args), None, KUBECTL_TIMEOUT)
    }

    /// `kubectl ARGS` with `input` on stdin, whatever the outcome.
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> Output {
        run(
            &mut self.kubectl_command(args),
            Some(input),
            KUBECTL_TIMEOUT,
        )
    }

    fn check(args: &[&str], out: &Output) -> String {
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl ARGS`; panics with its output when it fails; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ControlPlane::check(args, &self.kubectl(args))
    }

    /// `kubectl ARGS` with `input` on stdin; panics when it fails; stdout.
    pub fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        ControlPlane::check(args, &self.kubectl_with_input(args, input))
    }

    /// `kubectl ARGS -o json`, parsed; panics when it fails.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        let text = self.ok(&full);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl {full:?}: {e}: {text}"))
    }

    /// `kubectl apply -f -` of `text`, whatever the outcome.
    pub fn apply_stdin(&self, text: &str) -> Output {
        self.kubectl_with_input(&["apply", "-f", "-"], text)
    }

    /// `kubectl apply -f -` of `text`; panics when it fails.
    pub fn apply(&self, text: &str) {
        self.ok_with_input(&["apply", "-f", "-"], text);
    }

    /// `kubectl apply -f PATH` of a file or directory of the workspace
    /// (`deploy/crds.yaml`, …); panics when it fails.
    pub fn apply_file(&self, path: &str) {
        let path = workspace_root().join(path);
        self.ok(&["apply", "-f", path.to_str().expect("utf-8 path")]);
    }

    /// Waits (at most 30 s) until the API server serves every CRD
    /// (`kubectl wait --for condition=established crd --all`).
    pub fn wait_crds(&self) {
        self.ok(&[
            "wait",
            "--for",
            "condition=established",
            "--timeout",
            "30s",
            "crd",
            "--all",
        ]);
    }

    /// Writes `status.loadBalancer.ingress` of a Service by hand (as
    /// another controller would), through the status subresource.
    pub fn write_ingress(&self, namespace: &str, name: &str, ips: &[&str]) {
        let mut svc = self.json(&["-n", namespace, "get", "svc", name]);
        let ingress: Vec<Value> = ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect();
        svc["status"] = serde_json::json!({"loadBalancer": {"ingress": ingress}});
        self.replace_status(
            &format!("/api/v1/namespaces/{namespace}/services/{name}/status"),
            &svc,
        );
    }

    /// `kubectl replace --raw PATH -f -` of `object` (a status subresource:
    /// `/api/v1/nodes/NAME/status`, …); panics when it fails.
    pub fn replace_status(&self, path: &str, object: &Value) {
        self.ok_with_input(&["replace", "--raw", path, "-f", "-"], &object.to_string());
    }

    /// The first `events.k8s.io` Event regarding `name` in `namespace` with
    /// this reason.
    pub fn event(&self, namespace: &str, name: &str, reason: &str) -> Option<Value> {
        let ev = self.json(&["-n", namespace, "get", "events.events.k8s.io"]);
        ev["items"]
            .as_array()?
            .iter()
            .find(|e| e["reason"] == reason && e["regarding"]["name"] == name)
            .cloned()
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/sa`
    /// (the token of the Secret the controller-manager makes for it,
    /// waited for at most 20 s), written into the state directory.
    pub fn service_account_kubeconfig(&self, namespace: &str, sa: &str) -> PathBuf {
        let token = wait_until(Duration::from_secs(20), || {
            let secrets = self.json(&["-n", namespace, "get", "secrets"]);
            secrets["items"].as_array()?.iter().find_map(|s| {
                let owner = &s["metadata"]["annotations"]["kubernetes.io/service-account.name"];
                (owner == sa && s["type"] == "kubernetes.io/service-account-token")
                    .then(|| s["data"]["token"].as_str().map(str::to_owned))
                    .flatten()
            })
        })
        .unwrap_or_else(|| panic!("no token Secret for service account {namespace}/{sa} in 20 s"));
        let token = String::from_utf8(decode_base64(&token)).expect("token text");
        let admin = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let field = |key: &str| {
            admin
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in the kubeconfig"))
                .to_owned()
        };
        let path = self.state.path().join(format!("{sa}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: sa\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: sa}}\ncurrent-context: t\n",
                field("server: "),
                field("certificate-authority: ")
            ),
        )
        .expect("writing the kubeconfig");
        path
    }

    /// A kubeconfig that authenticates as user `name` (in no group) with a
    /// client certificate of the control plane's CA, written into the
    /// state directory: a person who may do nothing until a role is bound
    /// to them (`kubectl create clusterrolebinding … --user=NAME`).
    pub fn user_kubeconfig(&self, name: &str) -> PathBuf {
        let pki = self.state.path().join("pki");
        let file = |ext: &str| pki.join(format!("user-{name}.{ext}"));
        let (key, csr, crt, ext) = (file("key"), file("csr"), file("crt"), file("ext"));
        std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").expect("writing the extension file");
        let subject = format!("/CN={name}");
        for args in [
            vec![
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                path_str(&key),
                "-out",
                path_str(&csr),
                "-subj",
                subject.as_str(),
            ],
            vec![
                "x509",
                "-req",
                "-in",
                path_str(&csr),
                "-CA",
                path_str(&pki.join("ca.crt")),
                "-CAkey",
                path_str(&pki.join("ca.key")),
                "-CAcreateserial",
                "-out",
                path_str(&crt),
                "-days",
                "2",
                "-extfile",
                path_str(&ext),
            ],
        ] {
            let out = run(Command::new("openssl").args(&args), None, KUBECTL_TIMEOUT);
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let admin = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let field = |key: &str| {
            admin
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in the kubeconfig"))
                .to_owned()
        };
        let path = self.state.path().join(format!("user-{name}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: {name}\n  user: {{client-certificate: \"{}\", client-key: \"{}\"}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: {name}}}\ncurrent-context: t\n",
                field("server: "),
                field("certificate-authority: "),
                crt.display(),
                key.display()
            ),
        )
        .expect("writing the kubeconfig");
        path
    }

    /// Restarts the named processes (`etcd`, `kube-apiserver`, …) with the
    /// same data, ports and certificates (`tests/apiserver/restart.sh`,
    /// which waits at most 60 s for the API server); panics when it fails.
    pub fn restart(&self, names: &[&str]) {
        let mut command = self.command(workspace_root().join("tests/apiserver/restart.sh"));
        command.arg(self.state.path()).args(names);
        let out = run(&mut command, None, SCRIPT_TIMEOUT);
        assert!(
            out.status.success(),
            "restart.sh {names:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for ControlPlane<'_> {
    /// `stop.sh` kills by pid, so it runs from the test's own namespace
    /// (also when the lab namespace is already gone).
    fn drop(&mut self) {
        let _ = Command::new(workspace_root().join("tests/apiserver/stop.sh"))
            .arg(self.state.path())
            .stdin(Stdio::null())
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_of_a_token() {
        assert_eq!(
            decode_base64("ZXlKaGJHY2lPaUpTVXpJMU5pSjk="),
            b"eyJhbGciOiJSUzI1NiJ9"
        );
        assert_eq!(decode_base64("YQ=="), b"a");
        assert_eq!(decode_base64("YWI=\n"), b"ab");
        assert_eq!(decode_base64(""), b"");
    }
}
