#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lookout_fuzz::spool_open::spool_open(data));
