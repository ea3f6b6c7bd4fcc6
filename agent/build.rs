//! The agent's binary is linked with packed relative relocations (RELR) where the C library it
//! will run on can load them (glibc 2.36 and later). A position-independent binary of this size
//! has about 21,000 relative relocations: as RELA entries they are 503 KB that the loader reads
//! once at start and that then stay mapped (and counted in the agent's RSS) for the process's
//! life; packed they are 6 KB. Built on an older glibc, or for another target, the binary is
//! linked as before. A binary built with them refuses, by name (`GLIBC_ABI_DT_RELR`), to start on
//! a glibc older than 2.36 (Ubuntu 22.04, RHEL 9): to build for such servers on a newer machine,
//! set `LOOKOUT_AGENT_PACKED_RELOCS=0`. The build says which it did, as a cargo warning, when
//! this script runs.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=LOOKOUT_AGENT_PACKED_RELOCS");
    let off = env::var("LOOKOUT_AGENT_PACKED_RELOCS")
        .is_ok_and(|v| matches!(v.trim(), "0" | "false" | "no" | "off"));
    let target = env::var("TARGET").unwrap_or_default();
    let native = env::var("HOST").is_ok_and(|host| host == target);
    let loadable =
        native && target.ends_with("-linux-gnu") && glibc().is_some_and(|v| v >= (2, 36));
    if loadable && !off {
        println!("cargo::rustc-link-arg-bin=lookout-agent=-Wl,-z,pack-relative-relocs");
        println!(
            "cargo::warning=lookout-agent is linked with packed relocations: it needs glibc 2.36 \
             or later where it runs; LOOKOUT_AGENT_PACKED_RELOCS=0 builds one for older servers"
        );
    } else if loadable {
        println!(
            "cargo::warning=lookout-agent is linked without packed relocations \
             (LOOKOUT_AGENT_PACKED_RELOCS): about 0.5 MB more memory where it runs"
        );
    }
}

/// The build machine's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    let minor = minor.split('.').next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}
