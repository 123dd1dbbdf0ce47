//! The Go runtime functions that remove map entries, and the rule that picks
//! which of them to probe so that every delete is seen exactly once.

use serde::Serialize;

use super::image::Image;
use super::GoBinary;

/// What a call to the function does to the map: a delete removes (at most)
/// one entry, a clear all of them. Also the kind of each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Delete,
    Clear,
}

/// How the key reaches the function (Go register ABI, docs/go-runtime.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyArg {
    /// CX = pointer to the key; its size comes from the map type.
    Pointer,
    /// CX = the key value, low 32 bits.
    Value32,
    /// CX = the key value.
    Value64,
    /// CX = string data, DI = string length.
    String,
    /// No key: the whole map is cleared.
    None,
}

/// One function of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub role: Role,
    pub key: KeyArg,
    /// Methods of `maps.Map` take the map as receiver: AX = map, BX = type.
    pub receiver_first: bool,
}

const fn spec(name: &'static str, role: Role, key: KeyArg) -> Spec {
    Spec {
        name,
        role,
        key,
        receiver_first: false,
    }
}

pub const CATALOG: &[Spec] = &[
    spec("runtime.mapdelete", Role::Delete, KeyArg::Pointer),
    spec("runtime.mapdelete_fast32", Role::Delete, KeyArg::Value32),
    spec("runtime.mapdelete_fast64", Role::Delete, KeyArg::Value64),
    spec("runtime.mapdelete_faststr", Role::Delete, KeyArg::String),
    spec("runtime.mapclear", Role::Clear, KeyArg::None),
    spec("reflect.mapdelete", Role::Delete, KeyArg::Pointer),
    spec("reflect.mapdelete_faststr", Role::Delete, KeyArg::String),
    spec("reflect.mapclear", Role::Clear, KeyArg::None),
    Spec {
        receiver_first: true,
        ..spec(
            "internal/runtime/maps.(*Map).Delete",
            Role::Delete,
            KeyArg::Pointer,
        )
    },
    Spec {
        receiver_first: true,
        ..spec(
            "internal/runtime/maps.(*Map).Clear",
            Role::Clear,
            KeyArg::None,
        )
    },
];

pub fn spec_by_name(name: &str) -> Option<&'static Spec> {
    CATALOG.iter().find(|s| s.name == name)
}

/// Whether to probe `name`, and why, given the names of the catalog
/// functions it calls directly.
pub fn decide(name: &str, calls: &[&str]) -> (bool, String) {
    if name.starts_with("runtime.") {
        return (
            true,
            "the compiler emits a call to it for every such delete/clear; it is never inlined into user code".into(),
        );
    }
    if let Some(inner) = name.strip_prefix("reflect.") {
        let runtime_twin = format!("runtime.{inner}");
        return if calls.contains(&runtime_twin.as_str()) {
            (
                false,
                format!("it calls {runtime_twin}, which is probed: probing both would count each reflect delete twice"),
            )
        } else {
            (
                true,
                format!(
                    "{runtime_twin} is inlined into it, so reflect deletes reach no other probe"
                ),
            )
        };
    }
    (
        false,
        "it is reached only through runtime.map* and reflect.map*, which are probed: probing it too would count deletes twice".into(),
    )
}

/// Frames that belong to the machinery of a delete rather than to the code
/// that asked for it: the runtime itself, and the std-library helpers that
/// delete on behalf of their caller (reflect, maps.DeleteFunc). The caller
/// of a delete is the first frame that is none of these.
pub fn is_delete_machinery(func: &str) -> bool {
    func.starts_with("runtime.")
        || func.starts_with("internal/runtime/")
        || func.starts_with("reflect.map")
        || func == "reflect.Value.SetMapIndex"
        || func == "reflect.Value.Clear"
        || func.starts_with("maps.DeleteFunc")
}

/// The Go runtime's own frames (and its functions linknamed into reflect):
/// what a flame graph leaves out above the delete by default.
pub fn is_runtime_internal(func: &str) -> bool {
    func.starts_with("runtime.")
        || func.starts_with("internal/runtime/")
        || func.starts_with("reflect.mapdelete")
        || func == "reflect.mapclear"
}

/// Link-time `[start, end)` of the functions of `binary` that delete on
/// behalf of their caller (reflect's map functions, `maps.DeleteFunc` when
/// not inlined): the kernel steps over their frames to count the code that
/// asked for the delete. At most `max`; `image` is the executable
/// `binary` was read from.
pub fn machinery_ranges(binary: &GoBinary, image: &Image, max: usize) -> Vec<(u64, u64)> {
    let Some(table) = image.pclntab() else {
        return Vec::new();
    };
    let mut out: Vec<(u64, u64)> = table
        .funcs()
        .filter_map(Result::ok)
        .filter(|f| {
            is_delete_machinery(f.name)
                && !f.name.starts_with("runtime.")
                && !f.name.starts_with("internal/runtime/")
        })
        .filter_map(|f| table.func_range(&f, binary.text_base))
        .filter(|&(start, end)| start != 0 && end > start)
        .collect();
    out.sort_unstable();
    out.truncate(max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_is_probed_only_when_it_skips_the_runtime_function() {
        assert!(!decide("reflect.mapdelete", &["runtime.mapdelete"]).0);
        assert!(
            decide(
                "reflect.mapdelete",
                &["internal/runtime/maps.(*Map).Delete"]
            )
            .0
        );
        assert!(!decide("reflect.mapdelete_faststr", &["runtime.mapdelete_faststr"]).0);
        assert!(decide("runtime.mapclear", &[]).0);
        assert!(!decide("internal/runtime/maps.(*Map).Delete", &[]).0);
    }
}
