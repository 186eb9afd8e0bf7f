//! Runs the membership simulation (`ferrolb_speaker::simulation`) and
//! prints its report, the wall time and the peak memory.
//!
//!     cargo run --release -p ferrolb-speaker --example membership_sim -- \
//!         --nodes 1000 --ips 100000 --seed 1 [--deaths N] [--no-partition] [--keep-going]

use std::process::ExitCode;
use std::time::Instant;

use ferrolb_speaker::simulation::{Scenario, run};

fn main() -> ExitCode {
    let mut nodes = 10usize;
    let mut ips = 1000usize;
    let mut seed = 1u64;
    let mut deaths = None;
    let mut partition = true;
    let mut keep_going = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            args.next()
                .ok_or_else(|| format!("{name} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{name}: {e}"))
        };
        let parsed = match arg.as_str() {
            "--nodes" => value("--nodes").map(|v| nodes = v as usize),
            "--ips" => value("--ips").map(|v| ips = v as usize),
            "--seed" => value("--seed").map(|v| seed = v),
            "--deaths" => value("--deaths").map(|v| deaths = Some(v as usize)),
            "--no-partition" => {
                partition = false;
                Ok(())
            }
            "--keep-going" => {
                keep_going = true;
                Ok(())
            }
            other => Err(format!(
                "unknown argument {other:?} (use --nodes N --ips N --seed S [--deaths N] [--no-partition] [--keep-going])"
            )),
        };
        if let Err(e) = parsed {
            eprintln!("membership_sim: {e}");
            return ExitCode::from(2);
        }
    }
    let mut scenario = Scenario::new(nodes, ips, seed);
    if let Some(d) = deaths {
        scenario.deaths = d;
    }
    scenario.partition = partition;
    scenario.keep_going = keep_going;
    let started = Instant::now();
    let result = run(&scenario);
    let wall = started.elapsed();
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    match result {
        Ok(report) => {
            println!("{report}");
            println!("events: {}", report.events.join("; "));
            println!("wall {:.1} s, peak RSS {peak}", wall.as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("membership_sim: {e}");
            eprintln!("wall {:.1} s, peak RSS {peak}", wall.as_secs_f64());
            ExitCode::FAILURE
        }
    }
}
