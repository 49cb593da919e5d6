//! kube-rs side of kubefan's in-process fan-out comparison.
//!
//! One `watcher` on the ConfigMaps of namespace "bench" feeds one shared
//! reflector (`store_shared(buffer)`); N subscriber tasks each read their
//! own `Writer::subscribe()` stream on a tokio multi-thread runtime with two
//! workers. The input comes from bench/fanout's stream server, which stamps
//! every object with its send time (annotation bench.kubefan.io/sent-ns,
//! CLOCK_REALTIME nanoseconds) and its event number (bench.kubefan.io/seq).
//!
//! kube-rs subscribers receive an object reference and read the object from
//! the store when they are polled, so they see the newest version of it,
//! not necessarily the one the event carried: latency is measured against
//! the version read. Every subscriber gets one item per Apply event plus one
//! per listed object after InitDone, so it is done after K + M items.
//!
//! Prints one line: `RESULT {json}`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client, Config};

struct Args {
    kubeconfig: String,
    subscribers: usize,
    events: u64,
    objects: u64,
    buffer: usize,
    timeout_s: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: peer-kube-rs --kubeconfig PATH [--subscribers N] \
         [--events M] [--objects K] [--buffer CAP] [--timeout S]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        kubeconfig: String::new(),
        subscribers: 1,
        events: 100_000,
        objects: 100,
        buffer: 1024,
        timeout_s: 120,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_else(|| usage());
        let num = || v.parse::<u64>().unwrap_or_else(|_| usage());
        match argv[i].as_str() {
            "--kubeconfig" => a.kubeconfig = v.clone(),
            "--subscribers" => a.subscribers = num() as usize,
            "--events" => a.events = num(),
            "--objects" => a.objects = num(),
            "--buffer" => a.buffer = num() as usize,
            "--timeout" => a.timeout_s = num(),
            _ => usage(),
        }
        i += 2;
    }
    if a.kubeconfig.is_empty() || a.subscribers == 0 {
        usage();
    }
    a
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What one subscriber saw.
struct Seen {
    items: u64,
    first_sent_ns: u64, // send stamp of the first watch event it read
    last_recv_ns: u64,
    latencies_ns: Vec<u64>,
}

fn annotation(cm: &ConfigMap, key: &str) -> Option<i64> {
    cm.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i64>().ok())
}

async fn subscriber(
    mut handle: impl futures::Stream<Item = Arc<ConfigMap>> + Unpin,
    want: u64,
    events: u64,
) -> Seen {
    let mut seen = Seen {
        items: 0,
        first_sent_ns: u64::MAX,
        last_recv_ns: 0,
        latencies_ns: Vec::with_capacity(events as usize),
    };
    while seen.items < want {
        let Some(cm) = handle.next().await else { break };
        let recv = now_ns();
        seen.items += 1;
        seen.last_recv_ns = recv;
        let seq = annotation(&cm, "bench.kubefan.io/seq").unwrap_or(-1);
        if seq < 0 {
            continue;
        }
        let sent = annotation(&cm, "bench.kubefan.io/sent-ns").unwrap_or(0) as u64;
        seen.first_sent_ns = seen.first_sent_ns.min(sent);
        seen.latencies_ns.push(recv.saturating_sub(sent));
    }
    seen
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let kc = Kubeconfig::read_from(&a.kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    let api: Api<ConfigMap> = Api::namespaced(client, "bench");

    let (_reader, writer) = reflector::store_shared::<ConfigMap>(a.buffer);
    let want = a.objects + a.events;
    let mut tasks = Vec::with_capacity(a.subscribers);
    for _ in 0..a.subscribers {
        let handle = writer.subscribe().ok_or("store is not shared")?;
        tasks.push(tokio::spawn(subscriber(handle, want, a.events)));
    }

    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .applied_objects()
        .for_each(|_| futures::future::ready(()));
    let driver = tokio::spawn(stream);

    let mut all = Vec::new();
    let mut delivered = 0u64;
    let mut first_sent = u64::MAX;
    let mut last_recv = 0u64;
    let mut complete = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.timeout_s);
    for t in tasks {
        let seen = tokio::time::timeout_at(deadline, t).await??;
        delivered += seen.items;
        if seen.items >= want {
            complete += 1;
        }
        first_sent = first_sent.min(seen.first_sent_ns);
        last_recv = last_recv.max(seen.last_recv_ns);
        all.extend_from_slice(&seen.latencies_ns);
    }
    driver.abort();

    all.sort_unstable();
    let secs = if last_recv > first_sent {
        (last_recv - first_sent) as f64 / 1e9
    } else {
        0.0
    };
    let per_sub = if secs > 0.0 { a.events as f64 / secs } else { 0.0 };
    println!(
        "RESULT {{\"bench\":\"fanout\",\"impl\":\"kube-rs\",\
         \"subscribers\":{},\"events\":{},\"objects\":{},\"buffer\":{},\
         \"complete_subscribers\":{},\"delivered\":{},\"seconds\":{:.4},\
         \"events_per_sec_per_sub\":{:.0},\"events_per_sec_total\":{:.0},\
         \"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        a.subscribers,
        a.events,
        a.objects,
        a.buffer,
        complete,
        delivered,
        secs,
        per_sub,
        per_sub * a.subscribers as f64,
        percentile(&all, 0.50),
        percentile(&all, 0.99)
    );
    if complete != a.subscribers {
        return Err("some subscribers did not receive every event".into());
    }
    Ok(())
}

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(a)) {
        eprintln!("peer-kube-rs: {e}");
        std::process::exit(1);
    }
}
