// Symbol visibility: what the core exports to plugins and what plugins export to the core.
#pragma once

// Plugins are compiled with -fvisibility=hidden. Types whose vtables, typeinfo
// or static state must be shared across the core/plugin boundary (interfaces,
// the error type, registries) are marked SAPLING_API so exactly one copy lives
// in sapling's libraries and dynamic_cast / catch work across libraries.
#define SAPLING_API __attribute__((visibility("default")))
