//! The agent's binary is linked with packed relative relocations (RELR) where the C library it
//! will run on can load them (glibc 2.36 and later). A position-independent binary of this size
//! has about 23,700 relative relocations: as RELA entries they are 556 KiB that the loader reads
//! once at start and that then stay mapped (and counted in the agent's RSS) for the process's
//! life; packed they are a few KiB. Built on an older glibc, or for another target, the binary is
//! linked as before. A binary built with them refuses, by name (`GLIBC_ABI_DT_RELR`), to start on
//! a glibc older than 2.36: to build for such servers on a newer machine, set
//! `LOOKOUT_AGENT_PACKED_RELOCS=0`.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=LOOKOUT_AGENT_PACKED_RELOCS");
    if env::var("LOOKOUT_AGENT_PACKED_RELOCS").is_ok_and(|v| v == "0") {
        return;
    }
    let target = env::var("TARGET").unwrap_or_default();
    let native = env::var("HOST").is_ok_and(|host| host == target);
    if native && target.ends_with("-linux-gnu") && glibc().is_some_and(|v| v >= (2, 36)) {
        println!("cargo::rustc-link-arg-bin=lookout-agent=-Wl,-z,pack-relative-relocs");
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
