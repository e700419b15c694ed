//! `Pool`: a bounded set of interchangeable plugin instances shared by many threads.
//!
//! Owns checking instances out and back in, creating them on demand up to the limit, and
//! waiting (with a timeout) when all are busy. Thread safety comes from a `Mutex` and a
//! `Condvar` alone: no `unsafe impl`. Instances are created outside the lock, so a slow
//! creation never blocks threads returning or taking idle instances.

use std::{
    collections::HashMap,
    sync::{Arc, Condvar, Mutex, MutexGuard, Weak},
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{convert::FromBytesOwned, convert::ToBytes, Plugin};

type PluginSource = dyn Fn() -> Result<Plugin> + Send + Sync;

/// Configures a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    /// The most instances that exist at once (default: the available parallelism).
    pub max_instances: usize,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            max_instances: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl PoolBuilder {
    /// The default configuration.
    pub fn new() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Sets the most instances that exist at once.
    pub fn with_max_instances(mut self, n: usize) -> PoolBuilder {
        self.max_instances = n;
        self
    }

    /// A pool whose instances `source` creates.
    pub fn build<F: Fn() -> Result<Plugin> + Send + Sync + 'static>(self, source: F) -> Pool {
        Pool::new_from_builder(source, self)
    }
}

struct Slots {
    idle: Vec<Plugin>,
    /// Instances that exist or are being created (idle + checked out + in creation).
    live: usize,
}

struct Shared {
    source: Box<PluginSource>,
    max: usize,
    slots: Mutex<Slots>,
    /// Signalled when an instance comes back or a slot frees up.
    returned: Condvar,
    exports: Mutex<HashMap<String, bool>>,
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Instances of one plugin for many threads: [`Pool::get`] checks one out (creating it when
/// under the limit, waiting up to a timeout otherwise); dropping the [`PoolPlugin`] returns it.
///
/// ```
/// use std::time::Duration;
/// use extism::{CompiledPlugin, Plugin, PluginBuilder, PoolBuilder};
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rust/wasm/echo.wasm");
/// // Compile once; the pool creates instances from it as threads need them.
/// let compiled = CompiledPlugin::new(PluginBuilder::new(&std::fs::read(path)?))?;
/// let pool = PoolBuilder::new()
///     .with_max_instances(2)
///     .build(move || Plugin::new_from_compiled(&compiled));
/// std::thread::scope(|s| {
///     for i in 0..4 {
///         let pool = &pool;
///         s.spawn(move || {
///             let mut plugin = pool.get(Duration::from_secs(5)).unwrap().expect("an instance");
///             let out: String = plugin.call("echo", format!("thread {i}")).unwrap();
///             assert_eq!(out, format!("thread {i}"));
///         });
///     }
/// });
/// assert!(pool.count() <= 2);
/// assert!(pool.function_exists("echo", Duration::from_secs(1))?);
/// let length = pool.with_plugin(Duration::from_secs(1), |plugin| {
///     plugin.call::<&str, String>("length", "four")
/// })?;
/// assert_eq!(length.as_deref(), Some("4"));
/// # Ok::<(), extism::Error>(())
/// ```
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool with the default configuration.
    pub fn new<F: Fn() -> Result<Plugin> + Send + Sync + 'static>(source: F) -> Pool {
        Pool::new_from_builder(source, PoolBuilder::default())
    }

    /// A pool configured by `builder`.
    pub fn new_from_builder<F: Fn() -> Result<Plugin> + Send + Sync + 'static>(
        source: F,
        builder: PoolBuilder,
    ) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                source: Box::new(source),
                max: builder.max_instances,
                slots: Mutex::new(Slots {
                    idle: Vec::new(),
                    live: 0,
                }),
                returned: Condvar::new(),
                exports: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many instances exist (idle and checked out).
    pub fn count(&self) -> usize {
        self.shared.slots().live
    }

    /// Checks out an instance, creating one when under the limit; `Ok(None)` when none came
    /// free within `timeout`. An error is the source's error creating an instance.
    pub fn get(&self, timeout: Duration) -> Result<Option<PoolPlugin>> {
        let deadline = Instant::now().checked_add(timeout);
        let mut slots = self.shared.slots();
        loop {
            if let Some(plugin) = slots.idle.pop() {
                return Ok(Some(self.lend(plugin)));
            }
            if slots.live < self.shared.max {
                slots.live += 1;
                drop(slots);
                return match (self.shared.source)() {
                    Ok(plugin) => Ok(Some(self.lend(plugin))),
                    Err(e) => {
                        self.shared.slots().live -= 1;
                        self.shared.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if d <= now => return Ok(None),
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            slots = self
                .shared
                .returned
                .wait_timeout(slots, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Runs `f` with a checked-out instance; `Ok(None)` when none came free within `timeout`.
    pub fn with_plugin<T>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut Plugin) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.get(timeout)? {
            Some(mut plugin) => f(&mut plugin).map(Some),
            None => Ok(None),
        }
    }

    /// True when the plugin exports `name` as a callable function. Remembered after the
    /// first answer; `false` (not remembered) when no instance came free within `timeout`.
    pub fn function_exists(&self, name: &str, timeout: Duration) -> Result<bool> {
        let known = self.exports().get(name).copied();
        if let Some(exists) = known {
            return Ok(exists);
        }
        let Some(plugin) = self.get(timeout)? else {
            return Ok(false);
        };
        let exists = plugin.function_exists(name);
        self.exports().insert(name.to_string(), exists);
        Ok(exists)
    }

    fn exports(&self) -> MutexGuard<'_, HashMap<String, bool>> {
        self.shared
            .exports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lend(&self, plugin: Plugin) -> PoolPlugin {
        PoolPlugin {
            plugin: Some(plugin),
            pool: Arc::downgrade(&self.shared),
        }
    }
}

/// An instance checked out of a [`Pool`]; use it as a [`Plugin`]. Dropping it returns it to
/// the pool (or frees it when the pool is gone).
pub struct PoolPlugin {
    /// `Some` until dropped.
    plugin: Option<Plugin>,
    pool: Weak<Shared>,
}

impl std::fmt::Debug for PoolPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolPlugin")
            .field("plugin", &self.plugin.as_ref().map(|p| p.id))
            .finish()
    }
}

impl PoolPlugin {
    /// Calls `name` with `input` on this instance.
    pub fn call<'a, Input: ToBytes<'a>, Output: FromBytesOwned>(
        &mut self,
        name: impl AsRef<str>,
        input: Input,
    ) -> Result<Output> {
        std::ops::DerefMut::deref_mut(self).call(name, input)
    }

    /// The instance's plugin id.
    pub fn id(&self) -> uuid::Uuid {
        std::ops::Deref::deref(self).id
    }
}

impl std::ops::Deref for PoolPlugin {
    type Target = Plugin;
    fn deref(&self) -> &Plugin {
        self.plugin.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for PoolPlugin {
    fn deref_mut(&mut self) -> &mut Plugin {
        self.plugin.as_mut().expect("present until dropped")
    }
}

impl Drop for PoolPlugin {
    fn drop(&mut self) {
        let (Some(plugin), Some(pool)) = (self.plugin.take(), self.pool.upgrade()) else {
            return;
        };
        pool.slots().idle.push(plugin);
        pool.returned.notify_one();
    }
}
