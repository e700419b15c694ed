//! The macros of upstream's API: `host_fn!` (typed host functions) and `typed_plugin!` (a
//! typed wrapper over a plugin's exports). They expand to calls of the public API only.

/// Defines a typed host function for [`crate::Function::new`] or
/// [`crate::PluginBuilder::with_function`].
///
/// Each argument is read from the guest's memory block with [`crate::FromBytes`]; the body
/// returns `Result<R, extism::Error>` and `R` is written back with [`crate::ToBytes`] into a
/// new block whose handle becomes the first result. An optional first parameter before `;`
/// names the function's [`crate::UserData`].
///
/// ```
/// use extism::{host_fn, Function, UserData, PTR};
///
/// host_fn!(add_newline(text: String) -> String { Ok(text + "\n") });
/// host_fn!(pub count_calls(calls: u64; name: String) -> String {
///     let calls = calls.get()?;
///     let mut calls = calls.lock().unwrap();
///     *calls += 1;
///     Ok(format!("{name} #{calls}"))
/// });
///
/// let f = Function::new("add_newline", [PTR], [PTR], UserData::new(()), add_newline);
/// let g = Function::new("count", [PTR], [PTR], UserData::new(0u64), count_calls);
/// assert_eq!((f.name(), g.name()), ("add_newline", "count"));
/// ```
#[macro_export]
macro_rules! host_fn {
    ($vis:vis $name:ident ($($arg:ident : $argty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $crate::host_fn!($vis $name(_user_data: (); $($arg : $argty),*) $(-> $ret)? $body);
    };
    ($vis:vis $name:ident ($user_data:ident : $dataty:ty; $($arg:ident : $argty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $vis fn $name(
            plugin: &mut $crate::CurrentPlugin,
            inputs: &[$crate::Val],
            outputs: &mut [$crate::Val],
            #[allow(unused_variables, unused_mut)] mut $user_data: $crate::UserData<$dataty>,
        ) -> ::std::result::Result<(), $crate::Error> {
            let result = {
                let mut _inputs = inputs.iter();
                $(
                    let $arg: $argty = plugin.memory_get_val(_inputs.next().ok_or_else(|| {
                        $crate::Error::msg(concat!(
                            "host function `", stringify!($name), "` is missing argument `",
                            stringify!($arg), "`"
                        ))
                    })?)?;
                )*
                move || -> ::std::result::Result<_, $crate::Error> { $body }
            }()?;
            let handle: $crate::convert::MemoryHandle = plugin.memory_new(&result)?;
            if let Some(out) = outputs.first_mut() {
                *out = plugin.memory_to_val(handle);
            }
            Ok(())
        }
    };
}

/// Defines a newtype over [`crate::Plugin`] with one typed method per export.
///
/// `TryFrom<Plugin>` checks that every listed export exists; `From<Wrapper> for Plugin`
/// gives the plugin back.
///
/// ```
/// extism::typed_plugin!(pub Echo {
///     echo(&str) -> String;
/// });
///
/// let wat = r#"(module
///   (import "extism:host/env" "input_length" (func $len (result i64)))
///   (import "extism:host/env" "input_offset" (func $off (result i64)))
///   (import "extism:host/env" "output_set" (func $out (param i64 i64)))
///   (func (export "echo") (result i32)
///     (call $out (call $off) (call $len)) (i32.const 0)))"#;
/// let mut plugin: Echo = extism::Plugin::new(wat.as_bytes(), [], false)?.try_into()?;
/// assert_eq!(plugin.echo("hi")?, "hi");
/// assert!(Echo::try_from(extism::Plugin::new("(module)".as_bytes(), [], false)?).is_err());
/// # Ok::<(), extism::Error>(())
/// ```
#[macro_export]
macro_rules! typed_plugin {
    ($vis:vis $name:ident {$($f:ident $(< $( $lt:tt $( : $clt:path )? ),+ >)? ($input:ty) -> $output:ty);* $(;)?}) => {
        $vis struct $name(pub $crate::Plugin);

        impl ::std::convert::TryFrom<$crate::Plugin> for $name {
            type Error = $crate::Error;
            fn try_from(plugin: $crate::Plugin) -> ::std::result::Result<Self, Self::Error> {
                $(
                    if !plugin.function_exists(stringify!($f)) {
                        return Err($crate::Error::msg(concat!("Invalid function: ", stringify!($f))));
                    }
                )*
                Ok($name(plugin))
            }
        }

        impl ::std::convert::From<$name> for $crate::Plugin {
            fn from(typed: $name) -> Self {
                typed.0
            }
        }

        impl $name {
            $(
                pub fn $f<'a, $( $( $lt $( : $clt )? ),+ )? >(&'a mut self, input: $input) -> ::std::result::Result<$output, $crate::Error> {
                    self.0.call(stringify!($f), input)
                }
            )*
        }
    };
}
