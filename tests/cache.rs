//! The model cache on the real engine: single flight, keys, failures, idle release.

mod common;

use gstwhisperstt::model::cache::{EntryState, ModelAction, ModelCache};
use gstwhisperstt::model::{ContextOptions, Device, IdleTimeout, ModelKey};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

fn key(path: &std::path::Path) -> ModelKey {
    ModelKey::new(path, Device::Cpu, ContextOptions::default()).unwrap()
}

/// A private copy of the model, so each test has a key of its own.
fn model_copy(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let p = dir.path().join("ggml-tiny.en.bin");
    std::fs::copy(common::model_path(), &p).unwrap();
    p
}

#[test]
fn eight_threads_asking_at_once_share_one_load() {
    let cache = ModelCache::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let _sub = cache.subscribe(move |e| sink.lock().unwrap().push(e.action));
    let key = key(&common::model_path());
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cache, key, barrier) = (cache.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.acquire(&key, None).unwrap()
            })
        })
        .collect();
    let handles: Vec<_> = handles.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(cache.loads_of(&key), 1);
    let stats = cache.stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.model(&key).unwrap().live_handles, 8);
    assert_eq!(stats.model(&key).unwrap().state, EntryState::Live);
    assert!(handles
        .iter()
        .all(|h| Arc::ptr_eq(h.model(), handles[0].model())));
    let events = events.lock().unwrap();
    assert_eq!(
        events.iter().filter(|a| **a == ModelAction::Loaded).count(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|a| **a == ModelAction::Loading)
            .count(),
        1
    );
}

#[test]
fn another_parameter_or_a_replaced_file_is_another_model() {
    let tmp = tempfile::tempdir().unwrap();
    let path = model_copy(&tmp);
    let cache = ModelCache::new();
    let plain = cache.acquire(&key(&path), None).unwrap();
    let flash = ModelKey::new(&path, Device::Cpu, ContextOptions { flash_attn: true }).unwrap();
    let _flash = cache.acquire(&flash, None).unwrap();
    assert_eq!(cache.stats().loads, 2);

    // Replacing the file (new content, new modification time) makes a new key.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::copy(common::model_path(), tmp.path().join("new.bin")).unwrap();
    std::fs::rename(tmp.path().join("new.bin"), &path).unwrap();
    let replaced = key(&path);
    assert_ne!(&replaced, plain.key());
    let _new = cache.acquire(&replaced, None).unwrap();
    assert_eq!(cache.stats().loads, 3);
    assert_eq!(cache.loads_of(plain.key()), 1);
    assert_eq!(cache.loads_of(&replaced), 1);

    // A GPU device in a CPU-only build (this suite's, CI's) is refused, clearly.
    if !gstwhisperstt::model::GPU_BUILD {
        let gpu = ModelKey::new(&path, Device::Gpu(0), ContextOptions::default()).unwrap();
        let e = cache.acquire(&gpu, None).unwrap_err().to_string();
        assert!(e.contains("gpu:0") && e.contains("no GPU backend"), "{e}");
    }
    assert!("gpu:x".parse::<Device>().is_err());
}

#[test]
fn a_failed_load_reaches_every_waiter_and_is_not_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.bin");
    std::fs::write(&bad, b"not a model at all").unwrap();
    let cache = ModelCache::new();
    let key = key(&bad);
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, key, barrier) = (cache.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.acquire(&key, None).map(|_| ())
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in &results {
        let e = r.as_ref().unwrap_err().to_string();
        assert!(
            e.contains(&bad.display().to_string()) && e.contains("not a whisper.cpp ggml model"),
            "{e}"
        );
    }
    let failed = cache.stats().failed_loads;
    assert!((1..=4).contains(&failed));
    assert!(cache.stats().models.is_empty());
    // The next request tries again rather than getting a remembered failure.
    assert!(cache.acquire(&key, None).is_err());
    assert_eq!(cache.stats().failed_loads, failed + 1);
}

#[test]
fn idle_models_are_released_after_their_time_out() {
    let cache = ModelCache::new();
    let key = key(&common::model_path());
    let released = Arc::new(Mutex::new(0));
    let counter = released.clone();
    let _sub = cache.subscribe(move |e| {
        if e.action == ModelAction::Released {
            *counter.lock().unwrap() += 1;
        }
    });

    // Immediately.
    drop(
        cache
            .acquire(&key, Some(IdleTimeout::After(Duration::ZERO)))
            .unwrap(),
    );
    assert!(cache.stats().models.is_empty());
    assert_eq!(*released.lock().unwrap(), 1);

    // After a delay: idle first, then gone; a request in between revives it without a load.
    drop(
        cache
            .acquire(&key, Some(IdleTimeout::After(Duration::from_millis(400))))
            .unwrap(),
    );
    assert_eq!(cache.stats().model(&key).unwrap().state, EntryState::Idle);
    let revived = cache
        .acquire(&key, Some(IdleTimeout::After(Duration::from_millis(400))))
        .unwrap();
    assert_eq!(cache.loads_of(&key), 2);
    drop(revived);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(cache.stats().models.is_empty());
    assert_eq!(*released.lock().unwrap(), 2);

    // Never, or longer than time can count (it used to panic under the cache's lock):
    // stays until released by hand.
    for (timeout, releases) in [
        (Some(IdleTimeout::Never), 3),
        (Some(IdleTimeout::After(Duration::MAX)), 4),
        (IdleTimeout::parse("1e20"), 5),
    ] {
        assert!(timeout.is_some());
        drop(cache.acquire(&key, timeout).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(cache.stats().model(&key).unwrap().state, EntryState::Idle);
        assert_eq!(cache.release_idle(), 1);
        assert!(cache.stats().models.is_empty());
        assert_eq!(cache.stats().releases, releases);
    }
}

#[test]
fn release_never_races_a_new_request() {
    let cache = ModelCache::new();
    let key = key(&common::model_path());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, key) = (cache.clone(), key.clone());
            std::thread::spawn(move || {
                for _ in 0..15 {
                    let h = cache
                        .acquire(&key, Some(IdleTimeout::After(Duration::ZERO)))
                        .unwrap();
                    // The handle is always usable: its model is never freed under it.
                    h.context().create_state().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = cache.stats();
    assert!(stats.models.is_empty());
    assert_eq!(stats.loads, stats.releases);
}

#[test]
fn preload_resolves_names_and_pins_the_model() {
    let cache = ModelCache::new();
    let handle = cache
        .preload(
            "tiny.en",
            Device::Cpu,
            Default::default(),
            ContextOptions::default(),
        )
        .unwrap();
    assert_eq!(handle.info().hparams.size_name(), "tiny");
    assert_eq!(cache.stats().live_handles(), 1);
    drop(handle);
    assert_eq!(cache.stats().live_handles(), 0);
}
