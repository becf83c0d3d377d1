//! Commands left out of this build by a cargo feature (issue 18): each is still a subcommand, so
//! that running it says which feature it needs instead of clap's "unrecognized subcommand".

// The default build leaves nothing out.
#![cfg_attr(
    all(feature = "server", feature = "fixes-git"),
    allow(dead_code, unused_macros)
)]

/// The error of a command whose feature is off.
pub fn error(command: &str, feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`kmortem {command}` is not in this build: it needs the cargo feature `{feature}` (build kmortem with its default features, or `cargo build --release -p kmortem --features {feature}`)"
    )
}

/// `missing_command!(module, "command", "feature", "what it does")`: a module with the `Args` and
/// `run` of a command whose feature is off. `Args` takes any arguments (`--help` too), and `run`
/// fails with [`error`].
macro_rules! missing_command {
    ($module:ident, $command:literal, $feature:literal, $what:literal) => {
        pub mod $module {
            #[derive(clap::Args)]
            #[command(
                about = concat!($what, " (not in this build: needs the `", $feature, "` feature)"),
                disable_help_flag = true
            )]
            pub struct Args {
                #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
                rest: Vec<std::ffi::OsString>,
            }

            pub fn run(_: Args) -> anyhow::Result<std::process::ExitCode> {
                Err(super::missing::error($command, $feature))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_names_the_command_and_the_feature() {
        let e = super::error("serve", "server").to_string();
        println!("{e}");
        assert!(e.starts_with("`kmortem serve` is not in this build"), "{e}");
        assert!(e.contains("cargo feature `server`"), "{e}");
        assert!(e.contains("--features server"), "{e}");
    }
}
