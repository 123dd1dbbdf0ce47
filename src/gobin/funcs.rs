//! The Go runtime functions that remove map entries, and the rule that picks
//! which of them to probe so that every delete is seen exactly once.

use serde::Serialize;

/// What a call to the function does to the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Delete,
    Clear,
}

/// How the key reaches the function (Go register ABI, see the reference).
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
