#![no_main]

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

// The first byte picks the protocol, the rest is what the server says.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&which, server)) = data.split_first() {
        let protocols = fuzz_support::PROTOCOLS;
        fuzz_support::dialogue(protocols[which as usize % protocols.len()], server);
    }
});
