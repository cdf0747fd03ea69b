//! The sentences of the Showdown page that quote figures, generated from
//! `results.jsonl` like the tables, so that the page says what the run
//! measured and nothing else. The page includes each one where it belongs
//! (`{{#include showdown/says-threads.md}}`); the reasoning around them is
//! written in the page itself.
//!
//! Each sentence is built from the figures it quotes; where a figure is
//! missing (a part that did not run, a machine without `perf`), it says so
//! instead of inventing one. Where the data decides a word ("the most",
//! "less than"), the word is computed too.

use crate::micro::{CH01, CH02, CH05, CH05_MULTI, CH05_OWN, LOCAL_POOL, SMOL, SMOL_LOCAL, TOKIO, TOKIO_MULTI};
use crate::render::{Results, amount, grouped, name, names};

/// A function that writes one of the page's sentences.
type Say = fn(&Results) -> String;

/// Every generated sentence: (file name, text).
pub fn all(results: &Results) -> Vec<(String, String)> {
    let says: [(&str, Say); 16] = [
        ("says-elapsed.md", elapsed),
        ("says-timeouts.md", timeouts),
        ("says-threads.md", threads),
        ("says-limits.md", limits),
        ("says-fibers.md", fibers),
        ("says-futures.md", futures),
        ("says-tasks.md", tasks),
        ("says-wall.md", wall),
        ("says-micro.md", micro),
        ("says-ping-pong.md", ping_pong),
        ("says-fairness.md", fairness),
        ("says-hop.md", hop),
        ("says-own-reactor.md", own_reactor),
        ("says-spawn.md", spawn),
        ("says-idle.md", idle),
        ("says-switch.md", switch),
    ];
    says.into_iter().map(|(file, say)| (file.to_string(), say(results))).collect()
}

/// What a sentence says for a figure this run does not have.
const MISSING: &str = "(not measured in this run)";

/// A figure in its unit, if measured.
fn figure(results: &Results, metric: &str) -> Option<String> {
    let row = results.get(metric)?;
    Some(amount(row.value?, &row.unit))
}

/// The largest N of the showdown, if it ran.
fn largest(results: &Results) -> Option<usize> {
    results.sizes().last().copied()
}

/// A GETs figure: `measure` of `who` at `n`.
fn gets(results: &Results, n: usize, who: &str, measure: &str) -> Option<f64> {
    results.value(&format!("{n} GETs / {who} / {measure}"))
}

/// The approaches with a value for `measure` at `n`, with it.
fn gets_all(results: &Results, n: usize, measure: &str) -> Vec<(String, f64)> {
    let workload = format!("{n} GETs");
    results
        .contenders(&workload)
        .into_iter()
        .filter_map(|who| gets(results, n, &who, measure).map(|value| (who, value)))
        .collect()
}

/// How long the whole run took.
fn elapsed(results: &Results) -> String {
    match results.value(name::ELAPSED) {
        Some(ns) => {
            let seconds = (ns / 1e9).round() as u64;
            format!("The run these figures come from took {} min {} s.", seconds / 60, seconds % 60)
        }
        None => "How long the run took was not recorded.".into(),
    }
}

/// The GETs' timeouts.
fn timeouts(results: &Results) -> String {
    match (figure(results, "GETs / all / connect timeout"), figure(results, "GETs / all / read timeout")) {
        (Some(connect), Some(read)) => format!("{connect} for the connection and {read} for the whole answer"),
        _ => "chapter 1's default time limits for the connection and for the answer".into(),
    }
}

/// Chapter 1's threads at the largest N.
fn threads(results: &Results) -> String {
    let Some(n) = largest(results) else { return MISSING.into() };
    let workload = format!("{n} GETs / {}", crate::requests::THREADS);
    if let Some(note) =
        results.get(&format!("{workload} / wall")).filter(|r| r.value.is_none()).and_then(|r| r.note.clone())
    {
        return format!("At N = {} it did not run here ({note}).", grouped(n as f64));
    }
    let (Some(cpu), Some(memory)) = (
        figure(results, &format!("{workload} / CPU time")),
        figure(results, &format!("{workload} / memory per request")),
    ) else {
        return MISSING.into();
    };
    let rank = rank_phrase(
        &gets_all(results, n, "CPU time"),
        crate::requests::THREADS,
        "the most of all",
        "more than all but",
    );
    format!("At N = {} it uses {cpu} of CPU time, {rank}, and keeps {memory} resident per request", grouped(n as f64))
}

/// Where `who` stands among `values`, highest first: `top` if it is the
/// highest, `below` followed by those above it if only a few are.
fn rank_phrase(values: &[(String, f64)], who: &str, top: &str, below: &str) -> String {
    let Some(&(_, mine)) = values.iter().find(|(w, _)| w == who) else { return String::new() };
    let above: Vec<&str> = values.iter().filter(|(_, v)| *v > mine).map(|(w, _)| w.as_str()).collect();
    match above.len() {
        0 => top.to_string(),
        1 | 2 => format!("{below} {}", names(&above)),
        k => format!("less than {k} other approaches"),
    }
}

/// The limits that decide which N fit.
fn limits(results: &Results) -> String {
    let limit = |what: &str| results.value(&format!("{} / {what}", name::LIMITS));
    let maps = match limit("max_map_count") {
        Some(maps) => {
            format!("{} here: at most about {} threads at four mappings each", grouped(maps), grouped(maps / 4.0))
        }
        None => "unknown here".into(),
    };
    let files = limit("open files").map_or("unknown".into(), grouped);
    let cap = limit("server connections").map_or("unknown".into(), grouped);
    format!(
        "The kernel allows a process `vm.max_map_count` mappings ({maps}), and the showdown checks before \
         it starts a run: an N that does not fit is reported with the reason instead of crashing (threads \
         beyond the mappings, sockets beyond the open-file limit, {files} here, connections beyond the \
         server's cap, {cap})."
    )
}

/// Chapter 2's fibers: memory, and CPU time against wall time.
fn fibers(results: &Results) -> String {
    let (Some(&small), Some(n)) = (results.sizes().first(), largest(results)) else { return MISSING.into() };
    let who = crate::requests::FIBERS;
    let memory = figure(results, &format!("{n} GETs / {who} / memory per request")).unwrap_or(MISSING.into());
    let all_answered =
        results.sizes().iter().all(|&size| gets(results, size, who, "answered").is_some_and(|a| a as usize == size));
    let answered =
        if all_answered { "every request is answered" } else { "not every request is answered (see the tables)" };
    let others: Vec<f64> =
        gets_all(results, small, "CPU time").into_iter().filter(|(w, _)| w != who).map(|(_, v)| v).collect();
    let (Some(cpu), Some(wall)) = (gets(results, small, who, "CPU time"), gets(results, small, who, "wall")) else {
        return MISSING.into();
    };
    let low = others.iter().copied().fold(f64::INFINITY, f64::min);
    let high = others.iter().copied().fold(0.0, f64::max);
    let range = if others.is_empty() {
        String::new()
    } else {
        format!(", where every other approach uses between {} and {}", amount(low, "ns"), amount(high, "ns"))
    };
    format!(
        "Their memory is small ({memory} per request at N = {}) and {answered}, but look at CPU time \
         against wall time: at N = {} the fibers use {} of CPU time in the {} they wait{range}.",
        grouped(n as f64),
        grouped(small as f64),
        amount(cpu, "ns"),
        amount(wall, "ns")
    )
}

/// Chapters 3 and 4: memory and CPU time per request.
fn futures(results: &Results) -> String {
    let Some(n) = largest(results) else { return MISSING.into() };
    let (ch03, ch04) = (crate::requests::EPOLL, crate::requests::COROUTINES);
    let memory = |who| figure(results, &format!("{n} GETs / {who} / memory per request")).unwrap_or(MISSING.into());
    let cpu = |who| figure(results, &format!("{n} GETs / {who} / CPU time")).unwrap_or(MISSING.into());
    let mut by_cpu = gets_all(results, n, "CPU time");
    by_cpu.sort_by(|a, b| a.1.total_cmp(&b.1));
    let lowest: Vec<&str> = by_cpu.iter().take(2).map(|(w, _)| w.as_str()).collect();
    let standing = if lowest.contains(&ch03) && lowest.contains(&ch04) {
        "the least CPU time of all the approaches".to_string()
    } else if let Some((who, value)) = by_cpu.first() {
        format!("the least of all: *{who}*, {}", amount(*value, "ns"))
    } else {
        String::new()
    };
    format!(
        "At N = {}, chapter 3's state machines hold a request in flight in {} and chapter 4's coroutines \
         in {}, with {} and {} of CPU time ({standing})",
        grouped(n as f64),
        memory(ch03),
        memory(ch04),
        cpu(ch03),
        cpu(ch04)
    )
}

/// Chapter 5's memory per request, against tokio's and smol's.
fn tasks(results: &Results) -> String {
    let Some(n) = largest(results) else { return MISSING.into() };
    let memory = |who: &str| gets(results, n, who, "memory per request");
    let Some(ours) = memory(CH05) else { return MISSING.into() };
    let text = |value: Option<f64>| value.map_or(MISSING.into(), |v| amount(v, "B"));
    let compared = match memory(TOKIO) {
        Some(tokio) if ours < tokio => format!("less than the {} of *{TOKIO}*", amount(tokio, "B")),
        Some(tokio) => format!("no less than the {} of *{TOKIO}*", amount(tokio, "B")),
        None => String::new(),
    };
    format!(
        "At N = {}, chapter 5 holds a request in flight in {} ({} with its own reactor, {} with two \
         workers), {compared}, and *{SMOL_LOCAL}* in {}",
        grouped(n as f64),
        amount(ours, "B"),
        text(memory(CH05_OWN)),
        text(memory(CH05_MULTI)),
        text(memory(SMOL_LOCAL))
    )
}

/// The wall time at the largest N, and the listen overflows behind it.
fn wall(results: &Results) -> String {
    let Some(n) = largest(results) else { return MISSING.into() };
    let walls = gets_all(results, n, "wall");
    let delay = figure(results, "GETs / all / delay").unwrap_or("the".into());
    let overflows: Vec<(String, String)> = results
        .contenders(&format!("{n} GETs"))
        .into_iter()
        .filter_map(|who| {
            let note = results.get(&format!("{n} GETs / {who} / listen overflows"))?.note.clone()?;
            Some((who, note.rsplit(": ").next().unwrap_or_default().to_string()))
        })
        .collect();
    let any = overflows.iter().any(|(_, list)| list.trim_matches(['[', ']']).split(", ").any(|v| v.trim() != "0"));
    let (low, high) = (
        walls.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min),
        walls.iter().map(|(_, v)| *v).fold(0.0, f64::max),
    );
    let span =
        if walls.is_empty() { String::new() } else { format!(" from {} to {}", amount(low, "ns"), amount(high, "ns")) };
    let at = format!("At N = {}", grouped(n as f64));
    if overflows.is_empty() {
        return format!("{at} the wall time runs{span}; the listen overflows were not recorded.");
    }
    if any {
        let runs: Vec<String> = overflows.iter().map(|(who, list)| format!("*{who}* {list}")).collect();
        format!(
            "{at} the wall time runs{span} (the medians), against the {delay} delay. The kernel counted \
             listen overflows (`TcpExt: ListenOverflows`, each run's count): {}. An overflow is a handshake \
             packet dropped because the server's accept queue was full, and the client's kernel sends it \
             again only after a second, so in those runs part of the wall time is that wait.",
            runs.join("; ")
        )
    } else {
        format!(
            "{at} the wall time runs{span} (the medians), against the {delay} delay, and the kernel counted \
             no listen overflow (`TcpExt: ListenOverflows`) in any run: no handshake was dropped and \
             retried. The time above the delay is the time it takes to open {} connections and answer \
             them: the server accepts them one at a time on its one thread and starts each delay when it \
             has read that request, so the last answers leave later than the first.",
            grouped(n as f64)
        )
    }
}

/// The switch and yield round trips, side by side.
fn micro(results: &Results) -> String {
    let round = |who: &str| results.value(&format!("{} / {who}", name::ROUND_TRIP));
    let (Some(thread), Some(inline), Some(teaching), Some(coro)) =
        (round(CH01), round("ch02 fibers, inline switch"), round(CH02), round("corosensei"))
    else {
        return MISSING.into();
    };
    let executors: Vec<f64> =
        [CH05, CH05_MULTI, TOKIO, TOKIO_MULTI, SMOL, SMOL_LOCAL, LOCAL_POOL].iter().filter_map(|w| round(w)).collect();
    let low = executors.iter().copied().fold(f64::INFINITY, f64::min);
    let high = executors.iter().copied().fold(0.0, f64::max);
    format!(
        "A fiber's round trip takes {} to {} (corosensei's {}), a thread hand-over's {}, {:.0} times the \
         slowest fiber round trip; an executor's yield round trip takes {} to {}.",
        amount(inline, "ns"),
        amount(teaching, "ns"),
        amount(coro, "ns"),
        amount(thread, "ns"),
        thread / teaching,
        amount(low, "ns"),
        amount(high, "ns")
    )
}

/// The two ping-pongs of tokio, with the system calls that explain them.
fn ping_pong(results: &Results) -> String {
    let time = |workload: &str, who: &str| figure(results, &format!("{workload} / {who}"));
    let calls = |who: &str, measure: &str| results.value(&format!("{} / {who} / {measure}", name::CALLS_PER_PING_PONG));
    let (Some(tasks), Some(block_on)) = (time(name::PING_PONG, TOKIO), time(name::PING_PONG_FROM_BLOCK_ON, TOKIO))
    else {
        return MISSING.into();
    };
    let mut text = format!(
        "On *{TOKIO}*, a round trip takes {tasks} between two spawned tasks and {block_on} with the ping side \
         in `block_on`."
    );
    match (calls(TOKIO, "epoll waits, tasks"), calls(TOKIO, "epoll waits, block_on"), calls(TOKIO, "writes, block_on"))
    {
        (Some(waits_tasks), Some(waits), Some(writes)) => {
            text.push_str(&format!(
                " Counted with `perf stat`, the `block_on` variant makes {waits:.2} `epoll_wait` calls per round \
                 trip ({waits_tasks:.2} with two tasks) and {writes:.2} `write` calls."
            ));
            text.push_str(if writes < 0.5 {
                " So no eventfd is written: the wake comes from the runtime's own thread, where tokio only sets \
                 the `woken` flag (its `unpark_self` wakes nothing). The `epoll_wait` is the driver polled with \
                 a zero timeout, every time the ping side is woken, before the `block_on` future is polled again."
            } else {
                " Each wake writes to the driver's eventfd, and the driver is polled before the `block_on` \
                 future is polled again."
            });
        }
        _ => text.push_str(" Its system calls were not counted on this machine."),
    }
    text
}

/// The fairness rows in a sentence each.
fn fairness(results: &Results) -> String {
    let lateness = |who: &str, measure: &str| results.value(&format!("{} / {who} / {measure}", name::LATENESS));
    let contenders = results.contenders(name::LATENESS);
    let alone: Vec<(String, f64)> =
        contenders.iter().filter_map(|who| lateness(who, name::ALONE_MEDIAN).map(|v| (who.clone(), v))).collect();
    let mut text = String::new();
    if let (Some(low), Some(high)) =
        (alone.iter().min_by(|a, b| a.1.total_cmp(&b.1)), alone.iter().max_by(|a, b| a.1.total_cmp(&b.1)))
    {
        text.push_str(&format!(
            "Alone, the median sleep ends between {} late (*{}*) and {} late (*{}*).",
            amount(low.1, "ns"),
            low.0,
            amount(high.1, "ns"),
            high.0
        ));
    }
    let starved: Vec<&String> =
        contenders.iter().filter(|who| lateness(who, name::STARVED).is_some_and(|runs| runs > 0.0)).collect();
    if starved.is_empty() {
        if !contenders.is_empty() {
            text.push_str(" Beside the yielding task, no runtime starved the sleeper.");
        }
    } else {
        let limit = figure(results, &format!("{} / all / spin limit", name::LATENESS))
            .map_or("its limit".to_string(), |limit| format!("its {limit} limit"));
        text.push_str(&format!(
            " Beside the yielding task, {} never woke the sleeper while that task could run: the sleep ended \
             only when the task stopped by itself, at {limit}.",
            names(&starved)
        ));
    }
    let flood = |who: &str| {
        let metric = format!("{} / {who} / {}", name::FLOODING, name::ANSWER_TIME);
        let unanswered = results.value(&format!("{} / {who} / {}", name::FLOODING, name::UNANSWERED)).unwrap_or(0.0);
        match results.get(&metric) {
            Some(row) if row.value.is_none() => format!("*{who}*: {}", row.note.clone().unwrap_or_default()),
            Some(row) => {
                let extra = if unanswered > 0.0 {
                    format!(" in the median run ({unanswered:.0} of {} runs got no answer)", results.runs())
                } else {
                    String::new()
                };
                format!("*{who}*: answered after {}{extra}", amount(row.value.unwrap_or(0.0), &row.unit))
            }
            None => format!("*{who}*: {MISSING}"),
        }
    };
    let servers = results.contenders(name::FLOODING);
    if !servers.is_empty() {
        let lines: Vec<String> = servers.iter().map(|who| flood(who)).collect();
        text.push_str(&format!(" Under the flood, the other client's GET: {}.", lines.join("; ")));
    }
    if text.is_empty() { MISSING.into() } else { text.trim_start().to_string() }
}

/// The reactor thread's hop, in counts.
fn hop(results: &Results) -> String {
    let Some(n) = largest(results) else { return MISSING.into() };
    let count = |who: &str, measure: &str| results.value(&format!("{} {n} GETs / {who} / {measure}", name::CALLS_AT));
    let pair = |who: &str| match (count(who, "epoll waits"), count(who, "context switches")) {
        (Some(waits), Some(switches)) => {
            Some(format!("{} `epoll_wait` calls and {} context switches", grouped(waits), grouped(switches)))
        }
        _ => None,
    };
    match (pair(CH05), pair(CH05_OWN), pair(TOKIO)) {
        (Some(thread), Some(own), Some(tokio)) => format!(
            "Counted with `perf stat` on one run each at N = {}: through the reactor thread, {thread}; with \
             the runtime's own reactor, {own}; *{TOKIO}*, {tokio}.",
            grouped(n as f64)
        ),
        _ => "The system calls were not counted on this machine (see the counts' table).".into(),
    }
}

/// Chapter 5's own reactor against tokio (and chapter 3's loop), in system calls.
fn own_reactor(results: &Results) -> String {
    let Some(n) = largest(results) else { return MISSING.into() };
    let all = |who: &str| results.value(&format!("{} {n} GETs / {who} / system calls", name::CALLS_AT));
    match (all(CH05_OWN), all(TOKIO)) {
        (Some(ours), Some(tokio)) => {
            let floor =
                all(crate::requests::EPOLL).map_or(String::new(), |e| format!(", and chapter 3's loop {}", grouped(e)));
            format!(
                "At N = {} it makes {} system calls in all, against tokio's {}{floor}.",
                grouped(n as f64),
                grouped(ours),
                grouped(tokio)
            )
        }
        _ => "The system calls were not counted on this machine (see the counts' table).".into(),
    }
}

/// Allocations per spawned task.
fn spawn(results: &Results) -> String {
    let allocations = |who: &str| results.value(&format!("{} / {who}", name::ALLOCATIONS));
    let listed: Vec<String> = [CH05, TOKIO, SMOL, SMOL_LOCAL, LOCAL_POOL]
        .iter()
        .filter_map(|who| allocations(who).map(|a| format!("*{who}* {a:.2}")))
        .collect();
    if listed.is_empty() {
        "The allocations per task were not counted in this run.".to_string()
    } else {
        format!("Heap allocations per spawned task, counted by the bench's allocator: {}.", listed.join(", "))
    }
}

/// Bytes per sleeping task: the gaps.
fn idle(results: &Results) -> String {
    let memory = |who: &str| results.value(&format!("{} / {who}", name::IDLE_MEMORY));
    let Some(peer) = memory(SMOL_LOCAL) else { return MISSING.into() };
    let gap = |who: &str| {
        memory(who).map(|ours| {
            let (gap, share) = ((ours - peer).abs(), (ours / peer - 1.0).abs() * 100.0);
            let side = if ours <= peer { "less" } else { "more" };
            format!("*{who}* {} against {}: {gap:.0} B ({share:.0}%) {side}", amount(ours, "B"), amount(peer, "B"))
        })
    };
    let gaps: Vec<String> = [CH05, CH05_OWN].iter().filter_map(|who| gap(who)).collect();
    if gaps.is_empty() { MISSING.into() } else { format!("The gaps, against *{SMOL_LOCAL}*: {}.", gaps.join("; ")) }
}

/// The inline switch against corosensei.
fn switch(results: &Results) -> String {
    let round = |who: &str| results.value(&format!("{} / {who}", name::ROUND_TRIP));
    match (round("ch02 fibers, inline switch"), round("corosensei")) {
        (Some(ours), Some(theirs)) => format!(
            "In this run they are {} apart per round trip ({} against {}).",
            amount((ours - theirs).abs(), "ns"),
            amount(ours, "ns"),
            amount(theirs, "ns")
        ),
        _ => MISSING.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::SAMPLE;

    #[test]
    fn sentences_quote_the_figures_and_say_what_is_missing() -> anyhow::Result<()> {
        let results = Results::parse(SAMPLE)?;
        let said: std::collections::HashMap<String, String> = all(&results).into_iter().collect();
        assert_eq!(said.len(), 16);
        assert!(said["says-switch.md"].contains("1.0 ns apart per round trip (5.0 ns against 4.0 ns)"), "{said:?}");
        assert!(said["says-spawn.md"].contains("*futures LocalPool* 2.00"), "{said:?}");
        assert!(said["says-idle.md"].contains(MISSING), "{said:?}");
        let fairness = &said["says-fairness.md"];
        assert!(fairness.contains("*ch05 runtime, 1 thread* never woke the sleeper"), "{fairness}");
        assert!(fairness.contains("stopped by itself, at its limit."), "{fairness}");
        assert!(
            fairness.contains("*ch05 async delay server, 1 thread*: no answer within 3.00 s in 4 of 5 runs"),
            "{fairness}"
        );
        assert!(fairness.contains("*ch01 delay server, thread per connection*: answered after 400 µs"), "{fairness}");
        Ok(())
    }

    #[test]
    fn the_wall_time_sentence_follows_the_listen_overflows() -> anyhow::Result<()> {
        let run = |overflows: &str| {
            let line = format!(
                r#"{{"chapter":"showdown","metric":"100 GETs / ch03 one epoll loop / listen overflows","value":0,"unit":"count","note":"TcpExt ListenOverflows during each run: {overflows}"}}"#
            );
            Results::parse(&format!("{SAMPLE}{line}\n")).map(|results| wall(&results))
        };
        let none = run("[0, 0, 0, 0, 0]")?;
        assert!(none.contains("counted no listen overflow") && none.contains("open 100 connections"), "{none}");
        let some = run("[0, 3, 0, 0, 0]")?;
        assert!(
            some.contains("*ch03 one epoll loop* [0, 3, 0, 0, 0]") && !some.contains("no listen overflow"),
            "{some}"
        );
        Ok(())
    }

    #[test]
    fn a_rank_names_who_is_above() {
        let values = [("a".to_string(), 3.0), ("b".to_string(), 2.0), ("c".to_string(), 1.0)];
        assert_eq!(rank_phrase(&values, "a", "top", "below"), "top");
        assert_eq!(rank_phrase(&values, "b", "top", "below"), "below *a*");
        assert_eq!(rank_phrase(&values, "c", "top", "below"), "below *a* and *b*");
    }
}
