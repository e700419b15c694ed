//! `ExtismFunction`: host functions defined from C (`spec/c-api.md` §4).
//!
//! Owns the C view of values (`ExtismVal`, type codes), the bridge from a wasm call to the C
//! callback, the release of `user_data` and the attach-once rule. A definition is a core
//! [`Function`] whose closure owns the C callback and its `user_data`; `free_user_data` runs
//! when that closure is dropped, i.e. when the last owner goes away: the `ExtismFunction`
//! never given to a constructor, the constructor that failed, or the compiled plugin and the
//! plugins that use it.

use std::{
    ffi::{c_char, c_int, c_void},
    sync::Mutex,
};

use anyhow::{bail, Result};

use super::{c_slice, c_str, current_plugin, guard, ExtismSize};
use crate::{CurrentPlugin, Function, UserData, Val, ValType};

/// `ExtismValType` of the header: a C enum, read as a plain `int` so that out-of-range codes
/// from C are data, not undefined behaviour.
pub type ExtismValType = c_int;

/// `ExtismValUnion` of the header.
#[repr(C)]
#[derive(Clone, Copy)]
pub union ExtismValUnion {
    /// `I32`.
    pub i32: i32,
    /// `I64` (also `PTR`).
    pub i64: i64,
    /// `F32`.
    pub f32: f32,
    /// `F64`.
    pub f64: f64,
}

/// `ExtismVal` of the header: 16 bytes, the value at offset 8.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExtismVal {
    /// Which member of `v` holds the value.
    pub t: ExtismValType,
    /// The value.
    pub v: ExtismValUnion,
}

const _: () = assert!(std::mem::size_of::<ExtismVal>() == 16);
const _: () = assert!(std::mem::offset_of!(ExtismVal, v) == 8);

/// `ExtismFunctionType` of the header.
pub type ExtismFunctionType = unsafe extern "C" fn(
    plugin: *mut current_plugin::ExtismCurrentPlugin,
    inputs: *const ExtismVal,
    n_inputs: ExtismSize,
    outputs: *mut ExtismVal,
    n_outputs: ExtismSize,
    data: *mut c_void,
);

/// The callback that releases `user_data`.
pub type FreeUserData = unsafe extern "C" fn(*mut c_void);

/// The value types a C callback can exchange (the header's codes 0–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    I32 = 0,
    I64 = 1,
    F32 = 2,
    F64 = 3,
}

impl Scalar {
    fn from_code(code: ExtismValType) -> Result<Scalar, String> {
        match code {
            0 => Ok(Scalar::I32),
            1 => Ok(Scalar::I64),
            2 => Ok(Scalar::F32),
            3 => Ok(Scalar::F64),
            4..=6 => Err(format!(
                "value type {code} (V128, FuncRef or ExternRef) cannot be passed to or from a C host function"
            )),
            _ => Err(format!("invalid value type code {code}")),
        }
    }

    fn val_type(self) -> ValType {
        match self {
            Scalar::I32 => ValType::I32,
            Scalar::I64 => ValType::I64,
            Scalar::F32 => ValType::F32,
            Scalar::F64 => ValType::F64,
        }
    }

    /// The C value of a wasm argument, bit-exact for floats.
    fn to_c(val: &Val) -> Result<ExtismVal> {
        let (t, v) = match *val {
            Val::I32(i) => (Scalar::I32, ExtismValUnion { i32: i }),
            Val::I64(i) => (Scalar::I64, ExtismValUnion { i64: i }),
            Val::F32(bits) => (Scalar::F32, ExtismValUnion { i32: bits as i32 }),
            Val::F64(bits) => (Scalar::F64, ExtismValUnion { i64: bits as i64 }),
            _ => bail!("a C host function received a value it cannot represent"),
        };
        Ok(ExtismVal { t: t as c_int, v })
    }

    /// The wasm result read from `val` as this declared type, whatever `val.t` says (a callback
    /// that changed `t` still gets its result converted as declared), bit-exact for floats.
    fn read(self, val: &ExtismVal) -> Val {
        // SAFETY: every member of the union is plain data valid for any bit pattern, and the
        // union was fully initialised (zeroed) before the callback ran.
        unsafe {
            match self {
                Scalar::I32 => Val::I32(val.v.i32),
                Scalar::I64 => Val::I64(val.v.i64),
                Scalar::F32 => Val::F32(val.v.i32 as u32),
                Scalar::F64 => Val::F64(val.v.i64 as u64),
            }
        }
    }

    /// An output slot as the callback receives it: the declared type, the union zeroed.
    fn empty_slot(self) -> ExtismVal {
        ExtismVal {
            t: self as c_int,
            v: ExtismValUnion { i64: 0 },
        }
    }
}

/// The C callback and its data. Owned by the closure of one core [`Function`] (shared by all
/// its clones), so dropping it means the definition is gone for good.
struct Callback {
    func: ExtismFunctionType,
    /// `user_data` and `free_user_data`: freed with the last clone (`UserData::C`).
    user_data: UserData<()>,
    results: Vec<Scalar>,
}

impl Callback {
    fn invoke(
        &self,
        plugin: &mut CurrentPlugin,
        inputs: &[Val],
        outputs: &mut [Val],
    ) -> Result<()> {
        let inputs = inputs
            .iter()
            .map(Scalar::to_c)
            .collect::<Result<Vec<_>>>()?;
        let mut slots: Vec<ExtismVal> = self.results.iter().map(|s| s.empty_slot()).collect();
        let inputs_ptr = if inputs.is_empty() {
            std::ptr::null()
        } else {
            inputs.as_ptr()
        };
        let slots_ptr = if slots.is_empty() {
            std::ptr::null_mut()
        } else {
            slots.as_mut_ptr()
        };
        current_plugin::with_active(plugin, |current| {
            // SAFETY: the pointers are valid for the stated lengths for the whole callback,
            // and `current` stays valid until `with_active` returns.
            unsafe {
                (self.func)(
                    current,
                    inputs_ptr,
                    inputs.len() as ExtismSize,
                    slots_ptr,
                    slots.len() as ExtismSize,
                    self.user_data.as_ptr(),
                )
            }
        });
        for ((out, slot), scalar) in outputs.iter_mut().zip(&slots).zip(&self.results) {
            *out = scalar.read(slot);
        }
        Ok(())
    }
}

/// `ExtismFunction`: a host function definition until it is given to a constructor, an empty
/// wrapper afterwards.
pub struct ExtismFunction {
    /// `None` once given to a constructor: the definition then belongs to the (compiled)
    /// plugin, or is gone if the constructor failed.
    def: Mutex<Option<Function>>,
}

impl ExtismFunction {
    fn def(&self) -> std::sync::MutexGuard<'_, Option<Function>> {
        self.def.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes the definitions out of a constructor's `functions` array (NULL means none), as
/// upstream does: from here on they belong to the constructor, which either hands them to the
/// (compiled) plugin or drops them when it fails, so their `free_user_data` runs then. A NULL
/// entry or one already taken (also earlier in the same array) fails with upstream's
/// messages; the entries taken before it are consumed all the same.
///
/// # Safety
/// `functions` is NULL or points to `n` pointers, each NULL or a live `ExtismFunction`.
pub(crate) unsafe fn take_all(
    functions: *const *const ExtismFunction,
    n: ExtismSize,
) -> Result<Vec<Function>, String> {
    if functions.is_null() {
        return Ok(Vec::new());
    }
    let ptrs = c_slice(functions, n, "functions")?;
    let mut taken = Vec::with_capacity(ptrs.len());
    for &ptr in ptrs {
        let Some(source) = ptr.as_ref() else {
            return Err("Cannot pass null pointer".into());
        };
        match source.def().take() {
            Some(def) => taken.push(def),
            None => {
                return Err("Function cannot be registered with multiple different Plugins".into())
            }
        }
    }
    Ok(taken)
}

/// The body of `extism_function_new`.
///
/// # Safety
/// The pointers are NULL or valid as the header describes.
#[allow(clippy::too_many_arguments)] // the arguments of `extism_function_new`
unsafe fn new_function(
    name: *const c_char,
    inputs: *const ExtismValType,
    n_inputs: ExtismSize,
    outputs: *const ExtismValType,
    n_outputs: ExtismSize,
    func: Option<ExtismFunctionType>,
    user_data: *mut c_void,
    free_user_data: Option<FreeUserData>,
) -> Result<Box<ExtismFunction>, String> {
    let name = unsafe { c_str(name, "name") }?;
    let func = func.ok_or("func is a null pointer")?;
    let types =
        |ptr: *const ExtismValType, n: ExtismSize, what: &str| -> Result<Vec<Scalar>, String> {
            if ptr.is_null() {
                return Ok(Vec::new());
            }
            let codes = unsafe { c_slice(ptr, n, what) }?;
            codes.iter().map(|&code| Scalar::from_code(code)).collect()
        };
    let params = types(inputs, n_inputs, "inputs")?;
    let results = types(outputs, n_outputs, "outputs")?;
    let callback = Callback {
        func,
        user_data: UserData::new_pointer(user_data, free_user_data),
        results: results.clone(),
    };
    let function = Function::new(
        name,
        params.iter().map(|s| s.val_type()),
        results.iter().map(|s| s.val_type()),
        UserData::new(()),
        move |plugin, inputs, outputs, _| callback.invoke(plugin, inputs, outputs),
    );
    Ok(Box::new(ExtismFunction {
        def: Mutex::new(Some(function)),
    }))
}

/// Creates a host function in namespace `extism:host/user`. Returns NULL (and keeps nothing,
/// so `free_user_data` is not called) for a NULL or non-UTF-8 `name`, a NULL `func`, or a
/// type code other than I32/I64/F32/F64. The caller owns the result; see
/// `extism_function_free`.
#[no_mangle]
pub unsafe extern "C" fn extism_function_new(
    name: *const c_char,
    inputs: *const ExtismValType,
    n_inputs: ExtismSize,
    outputs: *const ExtismValType,
    n_outputs: ExtismSize,
    func: Option<ExtismFunctionType>,
    user_data: *mut c_void,
    free_user_data: Option<FreeUserData>,
) -> *mut ExtismFunction {
    guard(
        |_| std::ptr::null_mut(),
        || match unsafe {
            new_function(
                name,
                inputs,
                n_inputs,
                outputs,
                n_outputs,
                func,
                user_data,
                free_user_data,
            )
        } {
            Ok(f) => Box::into_raw(f),
            Err(e) => {
                tracing::error!(target: "extism::sdk", "extism_function_new: {e}");
                std::ptr::null_mut()
            }
        },
    )
}

/// Sets the import module name of a function not yet given to a constructor; no-op on NULL
/// arguments or afterwards. Invalid UTF-8 is replaced.
#[no_mangle]
pub unsafe extern "C" fn extism_function_set_namespace(
    ptr: *mut ExtismFunction,
    namespace_: *const c_char,
) {
    guard(
        |_| (),
        || {
            // SAFETY: NULL or a live function and a NUL-terminated string, per the header.
            let (Some(f), false) = (unsafe { ptr.as_ref() }, namespace_.is_null()) else {
                return;
            };
            let namespace = unsafe { std::ffi::CStr::from_ptr(namespace_) }.to_string_lossy();
            if let Some(def) = f.def().as_mut() {
                def.set_namespace(namespace);
            }
        },
    )
}

/// Frees the wrapper. A definition never given to a constructor goes with it (calling
/// `free_user_data`); one given to a constructor was consumed by it (it lives on in its
/// plugins, or was freed when the constructor failed), so this only releases the wrapper.
/// NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn extism_function_free(f: *mut ExtismFunction) {
    guard(
        |_| (),
        || {
            if !f.is_null() {
                // SAFETY: the pointer came from `extism_function_new` and is freed once.
                drop(unsafe { Box::from_raw(f) });
            }
        },
    )
}
