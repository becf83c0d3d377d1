//! `cargo run --example a2l -- BINARY ADDR...`: prints frames like `addr2line -fi` (for debugging
//! the oracle comparison).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((bin, addrs)) = args.split_first() else {
        eprintln!("usage: a2l BINARY ADDR...");
        std::process::exit(2);
    };
    let b = match kmortem_symbols::Binary::open(std::path::Path::new(bin)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for a in addrs {
        let a = u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap_or(0);
        match b.source_frames(a) {
            Ok(fr) => {
                for f in fr {
                    println!("{}", f.function.as_deref().unwrap_or("??"));
                    println!("{}:{}", f.file.as_deref().unwrap_or("??"), f.line);
                }
            }
            Err(e) => println!("error: {e}"),
        }
    }
}
