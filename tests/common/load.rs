//! Competing load, for the tests and the benchmark: other processes that take CPU beside the
//! measured one, as a media server's encoders and neighbours do. Killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Neighbours {
    children: Vec<Child>,
    started: Instant,
}

impl Neighbours {
    /// No neighbour at all.
    pub fn none() -> Neighbours {
        Neighbours {
            children: Vec::new(),
            started: Instant::now(),
        }
    }

    /// `n` normal-priority busy loops (`sh -c 'while :; do :; done'`).
    pub fn busy_loops(n: usize) -> Neighbours {
        let children = (0..n)
            .map(|_| spawn("sh", &["-c", "while :; do :; done"]))
            .collect();
        Neighbours::settled(children)
    }

    /// One process running `program args`.
    pub fn process(program: &str, args: &[&str]) -> Neighbours {
        Neighbours::settled(vec![spawn(program, args)])
    }

    /// Gives the neighbours time to get going, and the plugin's CPU monitor time to see them.
    fn settled(children: Vec<Child>) -> Neighbours {
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        Neighbours { children, started }
    }

    /// Cores the neighbours used on average since they started.
    pub fn cores_used(&self) -> f64 {
        let ticks: u64 = self.children.iter().map(|c| cpu_ticks(c.id())).sum();
        ticks as f64 / 100.0 / self.started.elapsed().as_secs_f64()
    }
}

impl Drop for Neighbours {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

/// User and system CPU ticks (1/100 s) of process `pid` so far; 0 once it is gone.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the command name: the state (field 3), ..., utime (14), stime (15).
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}
