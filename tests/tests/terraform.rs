//! deploy/terraform/ without a cloud: every `.tf` file parses (python-hcl2, as Terraform's
//! HCL), the enrolment token is a sensitive variable that reaches the app servers' user data
//! through the cloud-init template, and the collector's port is open to the app servers'
//! security group and nothing else.
//!
//! The template is rendered here as `templatefile()` would, for what it uses: its `${name}`
//! references are bare variable names, filled from the map main.tf passes, whose values are
//! evaluated here for the two forms main.tf uses (`var.X`, `base64encode(var.X)`); `$${` is a
//! literal `${` and `%%{` a literal `%{`. Anything else (an expression, a function, a `%{`
//! directive) fails the render instead of being guessed at, so the template cannot drift into
//! something this test does not render as Terraform would.

use base64::Engine;
use lookout_tests::deploy::{copy_root, debian_root, deploy_dir, in_root, python, yaml_to_json};
use serde_json::Value;
use std::collections::BTreeMap;

/// Every `.tf` and `.tfvars` file of deploy/terraform/, parsed: file name to python-hcl2's JSON.
fn parse_all() -> BTreeMap<String, Value> {
    let dir = deploy_dir().join("terraform");
    let json = python(
        "import sys, json, glob, os, hcl2\n\
         out = {}\n\
         for f in sorted(glob.glob(os.path.join(sys.argv[1], '*.tf*'))):\n\
         \x20   if f.endswith('.tftpl'): continue\n\
         \x20   with open(f) as h: out[os.path.basename(f)] = hcl2.load(h)\n\
         json.dump(out, sys.stdout)",
        &[dir.to_str().unwrap()],
        b"",
    );
    serde_json::from_str(&json).unwrap()
}

/// A string as python-hcl2 gives it, without the quotes HCL wrote around it.
fn unquote(v: &Value) -> &str {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// Every block `kind "a" "b" { ... }` of every file: (a, b, body); `variable "a"` has b = "".
fn blocks<'a>(files: &'a BTreeMap<String, Value>, kind: &str) -> Vec<(String, String, &'a Value)> {
    let mut out = Vec::new();
    for parsed in files.values() {
        for entry in parsed[kind].as_array().into_iter().flatten() {
            for (a, inner) in entry.as_object().into_iter().flatten() {
                let a = a.trim_matches('"').to_string();
                let nested = inner
                    .as_object()
                    .filter(|o| !o.contains_key("__is_block__"))
                    .filter(|o| o.values().all(|v| v.get("__is_block__").is_some()));
                match nested {
                    Some(named) => out.extend(
                        named
                            .iter()
                            .map(|(b, body)| (a.clone(), b.trim_matches('"').to_string(), body)),
                    ),
                    None => out.push((a, String::new(), inner)),
                }
            }
        }
    }
    out
}

fn resource<'a>(files: &'a BTreeMap<String, Value>, kind: &str, name: &str) -> &'a Value {
    blocks(files, "resource")
        .into_iter()
        .find(|(k, n, _)| k == kind && n == name)
        .unwrap_or_else(|| panic!("no resource {kind}.{name}"))
        .2
}

/// The `templatefile(PATH, { k = expr, ... })` call of a `user_data`: the template's file
/// name and the map's entries.
fn templatefile_call(user_data: &str) -> (String, Vec<(String, String)>) {
    let inner = user_data
        .strip_prefix("${templatefile(")
        .and_then(|s| s.strip_suffix(")}"))
        .unwrap_or_else(|| panic!("user_data is not one templatefile(): {user_data}"));
    let (path, map) = inner.split_once(", {").expect("templatefile(path, {map})");
    let file = path
        .trim_matches('"')
        .strip_prefix("${path.module}/")
        .unwrap_or_else(|| panic!("the template is not beside main.tf: {path}"))
        .to_string();
    let map = map.strip_suffix('}').expect("the map ends");
    let entries = map
        .split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once(" = ").unwrap_or_else(|| panic!("{kv}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    (file, entries)
}

/// main.tf's expression for a template variable, evaluated with `vars` as Terraform's
/// variables: `var.X` or `base64encode(var.X)`, nothing else.
fn evaluate(expr: &str, vars: &BTreeMap<&str, &str>) -> String {
    let var = |name: &str| -> String {
        vars.get(name)
            .unwrap_or_else(|| panic!("no test value for var.{name}"))
            .to_string()
    };
    if let Some(name) = expr.strip_prefix("var.") {
        return var(name);
    }
    if let Some(name) = expr
        .strip_prefix("base64encode(var.")
        .and_then(|s| s.strip_suffix(')'))
    {
        return base64::engine::general_purpose::STANDARD.encode(var(name));
    }
    panic!("the test cannot evaluate {expr:?}: extend evaluate() as Terraform would");
}

/// `template` rendered as `templatefile()` would with `values`, for bare `${name}`
/// references and the `$${`/`%%{` escapes; `Err` for anything else.
fn render(template: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find(['$', '%']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%%{") {
            out.push_str("%{");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or("unterminated ${")?;
            let name = &after[..end];
            let value = values
                .get(name)
                .ok_or_else(|| format!("${{{name}}}: not a variable passed to templatefile"))?;
            out.push_str(value);
            rest = &after[end + 1..];
        } else if tail.starts_with("%{") {
            return Err(format!(
                "a template directive, which this test does not render: {}",
                &tail[..tail.len().min(30)]
            ));
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn the_renderer_follows_templatefile_or_refuses() {
    let values: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
    assert_eq!(
        render("x ${a} $${a} %%{ y } $5 100%", &values).unwrap(),
        "x 1 ${a} %{ y } $5 100%"
    );
    assert!(render("${b}", &values).unwrap_err().contains("${b}"));
    assert!(render("${upper(a)}", &values).is_err());
    assert!(render("%{ if a }x%{ endif }", &values).is_err());
}

#[test]
fn the_module_parses_and_opens_the_collector_port_to_the_app_servers_only() {
    let files = parse_all();
    for name in [
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "versions.tf",
        "terraform.tfvars.example",
    ] {
        assert!(files.contains_key(name), "no {name}");
    }

    // The token: a sensitive variable, with no default.
    let variables = blocks(&files, "variable");
    let token = variables
        .iter()
        .find(|(n, _, _)| n == "enroll_token")
        .expect("variable enroll_token")
        .2;
    assert_eq!(token["sensitive"], Value::Bool(true));
    assert!(token.get("default").is_none(), "the token has no default");

    // Ingress: one rule, on the collector's group, for its port, from the app servers' group.
    let ingress: Vec<_> = blocks(&files, "resource")
        .into_iter()
        .filter(|(kind, _, _)| {
            kind == "aws_vpc_security_group_ingress_rule" || kind == "aws_security_group_rule"
        })
        .collect();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    let rule = ingress[0].2;
    assert_eq!(ingress[0].0, "aws_vpc_security_group_ingress_rule");
    assert_eq!(
        unquote(&rule["security_group_id"]),
        "${aws_security_group.collector.id}"
    );
    assert_eq!(
        unquote(&rule["referenced_security_group_id"]),
        "${aws_security_group.app.id}"
    );
    assert_eq!(unquote(&rule["ip_protocol"]), "tcp");
    assert_eq!(unquote(&rule["from_port"]), "${var.collector_port}");
    assert_eq!(unquote(&rule["to_port"]), "${var.collector_port}");
    for open in ["cidr_ipv4", "cidr_ipv6", "prefix_list_id"] {
        assert!(rule.get(open).is_none(), "the rule opens to {open}");
    }
    let port = variables
        .iter()
        .find(|(n, _, _)| n == "collector_port")
        .unwrap()
        .2;
    assert_eq!(port["default"], 7700);
    // No group opens anything inline.
    for (kind, name, body) in blocks(&files, "resource") {
        if kind == "aws_security_group" {
            assert!(body.get("ingress").is_none(), "inline ingress in {name}");
        }
    }
    let app = resource(&files, "aws_instance", "app");
    assert_eq!(
        app["vpc_security_group_ids"][0],
        "${aws_security_group.app.id}"
    );
    let collector = resource(&files, "aws_instance", "collector");
    assert_eq!(
        collector["vpc_security_group_ids"][0],
        "${aws_security_group.collector.id}"
    );

    // The app servers' user data: the template, given the token from the variable, and
    // every reference of the template is given (and nothing it does not use).
    let (file, entries) = templatefile_call(unquote(&app["user_data"]));
    assert!(
        entries.iter().any(|(_, v)| v.contains("var.enroll_token")),
        "{entries:?}"
    );
    let template = std::fs::read_to_string(deploy_dir().join("terraform").join(&file)).unwrap();
    let vars: BTreeMap<&str, &str> = [
        ("collector_url", "http://127.0.0.1:7700"),
        ("enroll_token", "t0ken"),
        ("collector_ca_pem", ""),
        ("agent_labels", "role=app"),
    ]
    .into();
    let values: BTreeMap<String, String> = entries
        .iter()
        .map(|(k, e)| (k.clone(), evaluate(e, &vars)))
        .collect();
    let rendered = render(&template, &values).unwrap();
    for (k, v) in &values {
        assert!(
            template.contains(&format!("${{{k}}}")),
            "{k} is passed but the template never uses it"
        );
        assert!(rendered.contains(v.as_str()), "{k}");
    }
    assert!(rendered.starts_with("#cloud-config\n"), "{rendered}");
    let cloud_config = yaml_to_json(&rendered);
    let written = cloud_config["write_files"].as_array().expect("write_files");
    let token_file = written
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("enroll-token"))
        })
        .expect("the token is written to a file");
    assert_eq!(token_file["permissions"], "0600");
    assert_eq!(token_file["content"], values["enroll_token_b64"].as_str());
    assert!(
        cloud_config["runcmd"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
}

/// The rendered cloud-init, run as cloud-init would on an app server's first boot, in a copy
/// of the Debian root (`$LOOKOUT_DEBIAN_ROOT`, chroot, no systemd running) against a collector
/// started here: its `write_files` written (base64 decoded, with their modes), then each
/// `runcmd` entry run in the root as root. The install script the collector serves installs
/// the agent and enrols it with the token from the Terraform variable; the oracles are the
/// collector's own agent listing, the files in the root and their modes.
///
/// What this is not: cloud-init itself (not installed in the root; its `write_files` and
/// `runcmd` modules are done here as their documentation says), nor a boot (no systemd, so
/// the script does its dry run of the start).
#[test]
fn the_rendered_cloud_init_installs_and_enrols_the_agent_in_a_debian_root() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    const ENROL: &str = "terraform-enrol-token-0123456789abcdef";

    let Some(debian) = debian_root() else {
        return;
    };

    // The collector, with enrolment on.
    let dir = tempfile::tempdir().unwrap();
    let port = lookout_tests::free_port();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{dir}\"\n\
             [enrollment]\ntoken = \"${{LOOKOUT_ENROLL_TOKEN}}\"\nlabels = {{ fleet = \"terraform\" }}\n",
            port = port.get(),
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let collector = lookout_tests::Daemon::start(
        &lookout_tests::bin("lookout-collector"),
        &["--config", config.to_str().unwrap()],
        &[("LOOKOUT_ENROLL_TOKEN", ENROL)],
    )
    .unwrap();
    collector
        .wait_for_line("collector listening", std::time::Duration::from_secs(20))
        .unwrap();
    let url = format!("http://127.0.0.1:{}", port.get());

    // The user data, rendered from main.tf's templatefile() map with these variables.
    let files = parse_all();
    let app = resource(&files, "aws_instance", "app");
    let (file, entries) = templatefile_call(unquote(&app["user_data"]));
    let template = std::fs::read_to_string(deploy_dir().join("terraform").join(&file)).unwrap();
    let vars: BTreeMap<&str, &str> = [
        ("collector_url", url.as_str()),
        ("enroll_token", ENROL),
        ("collector_ca_pem", ""),
        ("agent_labels", "role=app,env=production"),
    ]
    .into();
    let values: BTreeMap<String, String> = entries
        .iter()
        .map(|(k, e)| (k.clone(), evaluate(e, &vars)))
        .collect();
    let cloud_config = yaml_to_json(&render(&template, &values).unwrap());

    // A copy of the root to write into.
    let scratch = tempfile::tempdir().unwrap();
    let root = copy_root(&debian, scratch.path());

    // write_files: path, permissions, encoding b64, content.
    for f in cloud_config["write_files"].as_array().unwrap() {
        let path = root.join(f["path"].as_str().unwrap().trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        assert_eq!(f["encoding"], "b64");
        let content = base64::engine::general_purpose::STANDARD
            .decode(f["content"].as_str().unwrap_or_default())
            .unwrap();
        std::fs::write(&path, content).unwrap();
        let mode = u32::from_str_radix(f["permissions"].as_str().unwrap(), 8).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // runcmd: a list is the command's arguments, a string a line of sh.
    let mut said = String::new();
    for cmd in cloud_config["runcmd"].as_array().unwrap() {
        let argv: Vec<String> = match cmd {
            Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
            Value::String(s) => vec!["sh".into(), "-c".into(), s.clone()],
            other => panic!("runcmd entry {other}"),
        };
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = in_root(&root, &argv);
        said.push_str(&lookout_tests::deploy::said(&out));
        assert!(
            out.status.success(),
            "{argv:?} failed:\n{said}\ncollector:\n{}",
            collector.log_text()
        );
    }

    eprintln!("the user data's commands said:\n{said}");

    // Installed: the binary, the hardened unit of this tree, the token only in a 0600 file.
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/local/bin/lookout-agent"), 0o755);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/systemd/system/lookout-agent.service")).unwrap(),
        std::fs::read_to_string(deploy_dir().join("lookout-agent.service")).unwrap()
    );
    assert_eq!(mode("etc/lookout/agent.env"), 0o600);
    assert!(
        std::fs::read_to_string(root.join("etc/lookout/agent.env"))
            .unwrap()
            .contains(ENROL)
    );
    let toml = std::fs::read_to_string(root.join("etc/lookout/agent.toml")).unwrap();
    assert!(!toml.contains(ENROL), "the config holds no secret:\n{toml}");
    assert!(toml.contains(&format!("collector = \"{url}\"")), "{toml}");
    assert!(
        toml.contains("role = \"app\"") && toml.contains("env = \"production\""),
        "{toml}"
    );
    assert!(
        !root.join("run/lookout-install/enroll-token").exists(),
        "the token file is removed"
    );
    assert!(said.contains("dry run"), "{said}");

    // Enrolled: the collector lists the agent under the server's name.
    let host = String::from_utf8(Command::new("uname").arg("-n").output().unwrap().stdout).unwrap();
    let listed = Command::new(lookout_tests::bin("lookout-collector"))
        .args(["--config", config.to_str().unwrap(), "agents", "list"])
        .env("LOOKOUT_ENROLL_TOKEN", ENROL)
        .output()
        .unwrap();
    let listed = lookout_tests::deploy::said(&listed);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{} ", host.trim())) && l.contains("enrolled")),
        "{listed}\n{said}"
    );
}
