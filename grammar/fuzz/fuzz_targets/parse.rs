//! `cargo fuzz run parse` (from `grammar/`): the parser must never panic,
//! spans must lie on char boundaries inside the input, and anything that
//! parses must print back to source that parses to the same tree.

#![no_main]

use libfuzzer_sys::fuzz_target;

fn strip(mut e: kvlar_grammar::ast::Expr) -> kvlar_grammar::ast::Expr {
    e.map_spans(&mut |_| 0..0);
    e
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match kvlar_grammar::parse(src) {
        Ok(expr) => {
            assert!(src.get(expr.span.clone()).is_some());
            let printed = kvlar_grammar::to_source(&expr);
            match kvlar_grammar::parse(&printed) {
                Ok(reparsed) => assert_eq!(strip(reparsed), strip(expr)),
                // The printer adds readability parentheses (`!(a == b)`), which
                // can push an input near the limit over the nesting limit.
                Err(e) => assert_eq!(e.message, "expression nested too deeply", "{printed}"),
            }
        }
        Err(err) => {
            assert!(src.get(err.span.clone()).is_some());
            assert!(!err.message.is_empty());
        }
    }
});
