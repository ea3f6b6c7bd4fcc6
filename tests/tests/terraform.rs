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
use lookout_tests::deploy::{deploy_dir, python, yaml_to_json};
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
