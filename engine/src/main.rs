use std::process::ExitCode;

fn main() -> ExitCode {
    assay_engine::main()
}
