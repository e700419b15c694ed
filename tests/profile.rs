//! Sampling profiles of plugin calls (src/profile.rs): frames and proportions of a plugin with
//! known nested functions (testdata/wat/profile.wat), read back from the collapsed stacks, the
//! flame graph SVG and the Firefox Profiler JSON. No timing is asserted: only which frames
//! appear and how the sampled time splits between callers of known relative cost, with wide
//! bounds (the machine may be busy).

mod common;

use std::time::Duration;

use common::wat;
use extism::{Manifest, Plugin, PluginBuilder, Profile, ProfileOptions, Wasm};

fn profiled(modules: Vec<Wasm>) -> Plugin {
    PluginBuilder::new(Manifest::new(modules))
        .with_profiler(ProfileOptions::default().with_interval(Duration::from_micros(500)))
        .build()
        .unwrap()
}

fn plugin() -> Plugin {
    profiled(vec![Wasm::data(wat("profile"))])
}

fn profile_of(plugin: &mut Plugin, function: &str) -> Profile {
    plugin.call::<&str, &[u8]>(function, "").unwrap();
    plugin.take_profile().unwrap()
}

/// (frames root first, microseconds) per line of the collapsed format.
fn stacks(profile: &Profile) -> Vec<(Vec<String>, u64)> {
    profile
        .collapsed()
        .lines()
        .map(|line| {
            let (stack, micros) = line.rsplit_once(' ').expect("`STACK COUNT`");
            let frames = stack.split(';').map(String::from).collect();
            (frames, micros.parse().expect("a count"))
        })
        .collect()
}

/// Time of the stacks that pass through `frame`.
fn inclusive(stacks: &[(Vec<String>, u64)], frame: &str) -> u64 {
    stacks
        .iter()
        .filter(|(frames, _)| frames.iter().any(|f| f == frame))
        .map(|(_, t)| t)
        .sum()
}

/// The SVG parsed as XML (inferno's flame graphs declare the SVG 1.1 DTD).
fn parse_svg(text: &str) -> Result<roxmltree::Document<'_>, roxmltree::Error> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(text, options)
}

/// Work of three parts against one: ideally 3, but samples are wall time, so a thread that is
/// descheduled on a loaded machine gives a whole gap to one stack. The bounds only tell apart
/// a split that follows the work from an even or inverted one.
const THREE_TO_ONE: std::ops::RangeInclusive<f64> = 1.5..=10.0;

fn assert_ratio(a: u64, b: u64, low: f64, high: f64, what: &str) {
    assert!(b > 0, "{what}: no time at all in the smaller part");
    let ratio = a as f64 / b as f64;
    assert!(
        (low..=high).contains(&ratio),
        "{what}: ratio {ratio:.2} ({a} / {b}) outside {low}..{high}"
    );
}

#[test]
fn callers_of_a_hot_function_split_time_as_their_work() {
    let mut plugin = plugin();
    let profile = profile_of(&mut plugin, "run");
    let stacks = stacks(&profile);
    assert!(profile.sample_count() > 10, "{}", profile.collapsed());
    // Every frame is named from the guest's name section, though the kernel was linked in.
    for (frames, _) in &stacks {
        // The runtime's own kernel calls around the export (input, output) are roots too.
        assert!(
            frames[0] == "run" || frames[0].starts_with("[kernel] "),
            "{frames:?}"
        );
        assert!(
            frames.iter().all(|f| !f.starts_with("wasm-function")),
            "{frames:?}"
        );
    }
    let three = inclusive(&stacks, "three_parts");
    let one = inclusive(&stacks, "one_part");
    let hot = inclusive(&stacks, "hot");
    assert!(
        stacks
            .iter()
            .any(|(f, _)| f == &["run", "three_parts", "hot"]),
        "{}",
        profile.collapsed()
    );
    assert_ratio(
        three,
        one,
        *THREE_TO_ONE.start(),
        *THREE_TO_ONE.end(),
        "three_parts : one_part",
    );
    // Nearly all the time is in `hot`.
    assert_ratio(hot, inclusive(&stacks, "run"), 0.9, 1.0, "hot : run");
}

#[test]
fn flame_graph_svg_is_well_formed_with_frames_as_wide_as_their_time() {
    let mut plugin = plugin();
    let profile = profile_of(&mut plugin, "run");
    let mut svg = Vec::new();
    profile.write_svg(&mut svg).unwrap();
    let text = String::from_utf8(svg).unwrap();
    let doc = parse_svg(&text).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants().any(|n| n.tag_name().name() == "script"),
        "the interactive script (search, zoom) is embedded"
    );
    // Each frame is a <g> with a <title> "NAME (N µs, P%)" and a <rect> of its width.
    let mut widths = std::collections::HashMap::new();
    for g in doc.descendants().filter(|n| n.tag_name().name() == "g") {
        let title = g
            .children()
            .find(|c| c.tag_name().name() == "title")
            .and_then(|t| t.text());
        let rect = g.children().find(|c| c.tag_name().name() == "rect");
        let (Some(title), Some(rect)) = (title, rect) else {
            continue;
        };
        let name = title.split(" (").next().unwrap().to_string();
        let width: f64 = rect
            .attribute("width")
            .map(|w| w.trim_end_matches('%').parse().unwrap())
            .unwrap();
        assert!(title.contains("µs"), "{title}");
        *widths.entry(name).or_insert(0.0) += width;
    }
    for name in ["run", "three_parts", "one_part", "hot"] {
        assert!(widths.contains_key(name), "{name} in {widths:?}");
    }
    let ratio = widths["three_parts"] / widths["one_part"];
    assert!(THREE_TO_ONE.contains(&ratio), "{ratio} from {widths:?}");
    assert!(widths["run"] >= widths["three_parts"] + widths["one_part"] - 0.01);
}

#[test]
fn firefox_profile_json_has_the_stacks() {
    let mut plugin = plugin();
    let profile = profile_of(&mut plugin, "run");
    let mut json = Vec::new();
    profile.write_firefox_json(&mut json).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(v["meta"]["product"]
        .as_str()
        .unwrap()
        .contains("extism-run"));
    let thread = &v["threads"][0];
    let strings: Vec<&str> = thread["stringArray"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let func_names = thread["funcTable"]["name"].as_array().unwrap();
    let frame_funcs = thread["frameTable"]["func"].as_array().unwrap();
    let stack_frames = thread["stackTable"]["frame"].as_array().unwrap();
    let stack_prefixes = thread["stackTable"]["prefix"].as_array().unwrap();
    let name_of_stack = |stack: usize| {
        let frame = stack_frames[stack].as_u64().unwrap() as usize;
        let func = frame_funcs[frame].as_u64().unwrap() as usize;
        strings[func_names[func].as_u64().unwrap() as usize]
    };
    let samples = &thread["samples"];
    let sample_stacks = samples["stack"].as_array().unwrap();
    let weights = samples["weight"].as_array();
    let mut per_function = std::collections::HashMap::<&str, i64>::new();
    for (i, stack) in sample_stacks.iter().enumerate() {
        let weight = weights.and_then(|w| w[i].as_i64()).unwrap_or(1);
        let mut at = stack.as_u64().map(|s| s as usize);
        while let Some(s) = at {
            *per_function.entry(name_of_stack(s)).or_default() += weight;
            at = stack_prefixes[s].as_u64().map(|p| p as usize);
        }
    }
    for name in ["run", "three_parts", "one_part", "hot"] {
        assert!(
            per_function.contains_key(name),
            "{name} in {per_function:?}"
        );
    }
    let ratio = per_function["three_parts"] as f64 / per_function["one_part"] as f64;
    assert!(
        THREE_TO_ONE.contains(&ratio),
        "{ratio} from {per_function:?}"
    );
}

#[test]
fn deep_stacks_are_captured_whole() {
    let mut plugin = plugin();
    let profile = profile_of(&mut plugin, "deep");
    let stacks = stacks(&profile);
    let deepest = stacks
        .iter()
        .map(|(frames, _)| frames)
        .max_by_key(|f| f.len())
        .unwrap();
    assert_eq!(deepest[0], "deep");
    let descents = deepest.iter().filter(|f| *f == "descend").count();
    assert_eq!(descents, 101, "{deepest:?}");
    assert_eq!(deepest.last().unwrap(), "hot");
}

#[test]
fn host_functions_and_kernel_functions_are_named_as_such() {
    let check = |profile: &Profile, linked: bool| {
        let stacks = stacks(profile);
        let text = profile.collapsed();
        let host = inclusive(&stacks, "[host] get_log_level");
        assert!(host > 0, "{text}");
        assert!(
            stacks
                .iter()
                .any(|(f, _)| f == &["host_and_kernel", "[host] get_log_level"]),
            "{text}"
        );
        // `alloc` and `free` are calls of the kernel (only the byte-moving functions are
        // inlined): the guest's calls of them are named as kernel frames.
        assert!(
            stacks.iter().any(|(f, _)| f.len() == 2
                && f[0] == "host_and_kernel"
                && ["[kernel] free", "[kernel] alloc", "[kernel] alloc (export)"]
                    .contains(&f[1].as_str())),
            "linked: {linked}: {text}"
        );
    };
    // Kernel calls are short: five calls in one profile make a sample inside one all but
    // certain (one call missed `free` once in a loaded run).
    let five_calls = |plugin: &mut Plugin| {
        for _ in 0..5 {
            plugin.call::<&str, &[u8]>("host_and_kernel", "").unwrap();
        }
        plugin.take_profile().unwrap()
    };
    let mut linked = plugin();
    check(&five_calls(&mut linked), true);
    // A second module keeps the kernel an instance of its own; main's frames stay unprefixed.
    let mut separate = profiled(vec![
        Wasm::data(wat("profile")),
        Wasm::data(b"(module (func $helper))".to_vec()).with_name("other"),
    ]);
    check(&five_calls(&mut separate), false);
}

#[test]
fn a_timed_out_call_is_in_the_profile() {
    let manifest =
        Manifest::new([Wasm::data(wat("profile"))]).with_timeout(Duration::from_millis(200));
    let mut plugin = PluginBuilder::new(manifest)
        .with_profiler(ProfileOptions::default())
        .build()
        .unwrap();
    let err = plugin.call::<&str, &[u8]>("forever", "").unwrap_err();
    assert_eq!(err.to_string(), "timeout");
    let profile = plugin.take_profile().unwrap();
    let stacks = stacks(&profile);
    assert!(inclusive(&stacks, "forever") > 0, "{}", profile.collapsed());
    // The plugin keeps working and recording. `deep` (40 shares of work) outlasts many sampling
    // intervals; `quick` can finish between two samples on a fast machine.
    plugin.call::<&str, &[u8]>("deep", "").unwrap();
    let next = stacks_of(plugin.take_profile().unwrap());
    assert!(inclusive(&next, "deep") > 0, "{next:?}");
    assert_eq!(inclusive(&next, "forever"), 0, "taken profiles start over");
}

fn stacks_of(profile: Profile) -> Vec<(Vec<String>, u64)> {
    stacks(&profile)
}

#[test]
fn calls_accumulate_until_the_profile_is_taken() {
    let mut plugin = plugin();
    plugin.call::<&str, &[u8]>("run", "").unwrap();
    plugin.call::<&str, &[u8]>("deep", "").unwrap();
    let stacks = stacks(&plugin.take_profile().unwrap());
    assert!(inclusive(&stacks, "run") > 0);
    assert!(inclusive(&stacks, "deep") > 0);
}

#[test]
fn profiles_are_written_by_extension() {
    let mut plugin = plugin();
    let profile = profile_of(&mut plugin, "run");
    let dir = tempfile::tempdir().unwrap();
    profile.write(dir.path().join("p.svg")).unwrap();
    profile.write(dir.path().join("p.json")).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("p.svg")).unwrap();
    assert!(parse_svg(&svg).is_ok());
    let json = std::fs::read(dir.path().join("p.json")).unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
    let err = profile.write(dir.path().join("p.txt")).unwrap_err();
    assert!(err.to_string().contains(".svg"), "{err}");
    assert!(!dir.path().join("p.txt").exists());
}

#[test]
fn plugins_built_without_a_profiler_have_no_profile() {
    let mut plugin = Plugin::new(wat("profile"), [], false).unwrap();
    let err = plugin.take_profile().unwrap_err();
    assert!(err.to_string().contains("with_profiler"), "{err}");
}

#[test]
fn errors_read_the_same_with_a_profiler() {
    let wat = br#"(module
        (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
        (func (export "bad") (result i32) (drop (call $config_get (i64.const 123456))) (i32.const 0))
        (func (export "trap") (result i32) unreachable))"#;
    let mut plain = Plugin::new(&wat[..], [], false).unwrap();
    let mut profiled = PluginBuilder::new(&wat[..])
        .with_profiler(ProfileOptions::default())
        .build()
        .unwrap();
    for function in ["bad", "trap"] {
        let outcome = |p: &mut Plugin| {
            let (e, rc) = p
                .call_get_error_code::<&str, &[u8]>(function, "")
                .unwrap_err();
            (format!("{e:#}"), rc)
        };
        assert_eq!(outcome(&mut plain), outcome(&mut profiled), "{function}");
    }
}
