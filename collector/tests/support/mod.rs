//! Peers for the channel tests: an HTTP server that records what it is sent and answers as told
//! ([`http_peer`]), a strict fake of Slack's incoming webhook built on it ([`slack`]), and a real
//! SMTP server (aiosmtpd) in a child process ([`smtp`]).

// Each test binary uses a part of these.
#![allow(dead_code)]

pub mod http_peer;
pub mod slack;
pub mod smtp;

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
