#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lookout_fuzz::log_lines::log_lines(data));
