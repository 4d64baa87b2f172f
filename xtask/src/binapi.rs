//! `cargo xtask binapi`: Rust bindings for VPP's binary API from `.api.json`.
//!
//! Every message, type, enum, enumflag, union and alias of the modules in
//! [`MODULES`] becomes Rust code with big-endian packed encode/decode (see
//! `crates/maglev-vpp/src/wire.rs` for the runtime half). Each `.api.json`
//! folds in the definitions it imports, so a definition is emitted once, in
//! the first module (in [`MODULES`] order) that has it; a later copy must be
//! identical or generation fails.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Modules in dependency order: a definition belongs to the first that has it.
pub const MODULES: &[&str] = &[
    "core/interface_types",
    "core/ip_types",
    "core/vpe_types",
    "plugins/lb_types",
    "core/memclnt",
    "core/vlib",
    "core/vpe",
    "plugins/lb",
];

/// Where the generated code lives, relative to the workspace root.
pub const OUTPUT_DIR: &str = "crates/maglev-vpp/src/binapi";

/// The API directory to use when none is given: the project's copy beside
/// the workspace, else an installed VPP.
pub fn default_api_dir(root: &Path) -> Option<PathBuf> {
    [
        root.join("../shared/vpp-api"),
        PathBuf::from("/usr/share/vpp/api"),
    ]
    .into_iter()
    .find(|p| p.join("plugins/lb.api.json").is_file())
}

/// Generates all files into `out_dir` (created if missing).
pub fn generate(api_dir: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let files = render(api_dir)?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in files {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Renders every output file: name → contents.
pub fn render(api_dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut gen = Generator::default();
    let mut modules = Vec::new();
    for m in MODULES {
        let path = api_dir.join(format!("{m}.api.json"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        modules.push(gen.collect(m, json)?);
    }
    let mut out = BTreeMap::new();
    for module in &modules {
        out.insert(format!("{}.rs", module.name), gen.render_module(module)?);
    }
    out.insert("mod.rs".to_string(), gen.render_index(&modules));
    Ok(out)
}

#[derive(Default)]
struct Generator {
    /// Every definition by its API name (`address`, `lb_encap_type`…).
    defs: HashMap<String, Def>,
    /// Definition name → owning module.
    owner: HashMap<String, String>,
}

#[derive(Clone, PartialEq)]
enum Def {
    Struct(Vec<Value>),
    Union(Vec<Value>),
    Enum {
        repr: String,
        values: Vec<(String, i64)>,
    },
    Alias {
        target: String,
        length: Option<usize>,
    },
}

struct Module {
    name: String,
    file: String,
    version: String,
    /// Names of the definitions this module owns, in file order.
    owned: Vec<String>,
    messages: Vec<(String, Vec<Value>, String)>,
    services: BTreeMap<String, (String, bool)>,
}

fn camel(name: &str) -> String {
    name.split('_')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `vl_api_address_t` → `address`; builtins unchanged.
fn api_name(ty: &str) -> String {
    ty.strip_prefix("vl_api_")
        .and_then(|t| t.strip_suffix("_t"))
        .unwrap_or(ty)
        .to_string()
}

fn is_builtin(ty: &str) -> bool {
    matches!(
        ty,
        "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "u64" | "i64" | "f64" | "bool"
    )
}

fn builtin_size(ty: &str) -> Option<usize> {
    Some(match ty {
        "u8" | "i8" | "bool" => 1,
        "u16" | "i16" => 2,
        "u32" | "i32" => 4,
        "u64" | "i64" | "f64" => 8,
        _ => return None,
    })
}

/// Rust identifiers that cannot be used bare.
fn field_ident(name: &str) -> String {
    match name {
        "type" | "match" | "ref" | "mod" | "fn" | "in" | "loop" | "move" | "impl" | "use"
        | "where" | "struct" | "enum" | "trait" | "self" | "super" | "crate" | "async"
        | "await" | "dyn" | "box" | "final" | "override" | "priv" | "virtual" | "yield"
        | "macro" | "abstract" | "become" | "do" | "typeof" | "unsized" | "try" => {
            format!("r#{name}")
        }
        _ => name.to_string(),
    }
}

/// One field of a struct or message, classified.
enum Field {
    /// Scalar, named type, or fixed array `[T; N]`.
    Plain {
        name: String,
        ty: String,
        len: Option<usize>,
        default: Option<Value>,
    },
    /// `string x[N]` (N > 0): N bytes, NUL padded.
    FixedString { name: String, len: usize },
    /// `string x[]`: u32 length then bytes.
    VarString { name: String },
    /// `T x[count]` with the count in an earlier field.
    Vla {
        name: String,
        ty: String,
        count: String,
    },
    /// `u8 x[0]` without a count: the rest of the message.
    Rest { name: String },
}

fn parse_field(f: &Value) -> Result<Field, String> {
    let arr = f.as_array().ok_or("field is not an array")?;
    let ty = arr[0].as_str().ok_or("field type")?.to_string();
    let name = arr[1].as_str().ok_or("field name")?.to_string();
    let (len, count, opts) = match arr.get(2) {
        Some(Value::Number(n)) => (
            Some(n.as_u64().ok_or("array length")? as usize),
            arr.get(3).and_then(Value::as_str).map(str::to_string),
            None,
        ),
        Some(Value::Object(o)) => (None, None, Some(o.clone())),
        None => (None, None, None),
        Some(other) => return Err(format!("field {name}: unexpected {other}")),
    };
    let default = opts.and_then(|o| o.get("default").cloned());
    Ok(match (ty.as_str(), len, count) {
        ("string", Some(0), _) => Field::VarString { name },
        ("string", Some(n), _) => Field::FixedString { name, len: n },
        ("string", None, _) => return Err(format!("string {name} without a length")),
        (_, Some(0), Some(count)) => Field::Vla { name, ty, count },
        (_, Some(0), None) => Field::Rest { name },
        (_, len, _) => Field::Plain {
            name,
            ty,
            len,
            default,
        },
    })
}

impl Generator {
    fn collect(&mut self, file: &str, json: Value) -> Result<Module, String> {
        let name = json["module"].as_str().ok_or("no module name")?.to_string();
        let version = json["options"]["version"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut owned = Vec::new();
        let mut add = |gen: &mut Generator, def_name: String, def: Def| -> Result<(), String> {
            match gen.defs.get(&def_name) {
                Some(existing) if *existing == def => Ok(()),
                Some(_) => Err(format!(
                    "{file}: {def_name} differs from the definition in {}",
                    gen.owner[&def_name]
                )),
                None => {
                    gen.defs.insert(def_name.clone(), def);
                    gen.owner.insert(def_name.clone(), name.clone());
                    owned.push(def_name);
                    Ok(())
                }
            }
        };
        for t in json["types"].as_array().into_iter().flatten() {
            let a = t.as_array().ok_or("type")?;
            let n = a[0].as_str().ok_or("type name")?.to_string();
            let fields = a[1..].iter().filter(|f| f.is_array()).cloned().collect();
            add(self, n, Def::Struct(fields))?;
        }
        for t in json["unions"].as_array().into_iter().flatten() {
            let a = t.as_array().ok_or("union")?;
            let n = a[0].as_str().ok_or("union name")?.to_string();
            let fields = a[1..].iter().filter(|f| f.is_array()).cloned().collect();
            add(self, n, Def::Union(fields))?;
        }
        for key in ["enums", "enumflags"] {
            for e in json[key].as_array().into_iter().flatten() {
                let a = e.as_array().ok_or("enum")?;
                let n = a[0].as_str().ok_or("enum name")?.to_string();
                let mut values = Vec::new();
                let mut repr = "u32".to_string();
                for v in &a[1..] {
                    match v {
                        Value::Array(pair) => values.push((
                            pair[0].as_str().ok_or("enum value name")?.to_string(),
                            pair[1].as_i64().ok_or("enum value")?,
                        )),
                        Value::Object(o) => {
                            if let Some(t) = o.get("enumtype").and_then(Value::as_str) {
                                repr = t.to_string();
                            }
                        }
                        _ => {}
                    }
                }
                add(self, n, Def::Enum { repr, values })?;
            }
        }
        if let Some(aliases) = json["aliases"].as_object() {
            for (n, a) in aliases {
                let target = a["type"].as_str().ok_or("alias type")?.to_string();
                let length = a.get("length").and_then(Value::as_u64).map(|l| l as usize);
                add(self, n.clone(), Def::Alias { target, length })?;
            }
        }
        let mut messages = Vec::new();
        for m in json["messages"].as_array().into_iter().flatten() {
            let a = m.as_array().ok_or("message")?;
            let n = a[0].as_str().ok_or("message name")?.to_string();
            let crc = a
                .iter()
                .find_map(|x| x.get("crc").and_then(Value::as_str))
                .ok_or_else(|| format!("{n}: no crc"))?
                .to_string();
            let fields = a[1..].iter().filter(|f| f.is_array()).cloned().collect();
            messages.push((n, fields, crc));
        }
        let mut services = BTreeMap::new();
        if let Some(s) = json["services"].as_object() {
            for (req, svc) in s {
                let reply = svc["reply"].as_str().unwrap_or("null").to_string();
                let stream = svc.get("stream").and_then(Value::as_bool).unwrap_or(false);
                if reply != "null" {
                    services.insert(req.clone(), (reply, stream));
                }
            }
        }
        Ok(Module {
            name,
            file: format!("{file}.api.json"),
            version,
            owned,
            messages,
            services,
        })
    }

    /// Wire size of a fixed-size type.
    fn size_of(&self, ty: &str) -> Result<usize, String> {
        if let Some(s) = builtin_size(ty) {
            return Ok(s);
        }
        let n = api_name(ty);
        match self.defs.get(&n) {
            Some(Def::Enum { repr, .. }) => builtin_size(repr).ok_or(format!("enum {n}: {repr}")),
            Some(Def::Alias { target, length }) => Ok(self.size_of(target)? * length.unwrap_or(1)),
            Some(Def::Struct(fields)) => {
                let mut total = 0;
                for f in fields {
                    match parse_field(f)? {
                        Field::Plain { ty, len, .. } => {
                            total += self.size_of(&ty)? * len.unwrap_or(1)
                        }
                        Field::FixedString { len, .. } => total += len,
                        _ => return Err(format!("{n} has no fixed size")),
                    }
                }
                Ok(total)
            }
            Some(Def::Union(fields)) => {
                let mut max = 0;
                for f in fields {
                    if let Field::Plain { ty, len, .. } = parse_field(f)? {
                        max = max.max(self.size_of(&ty)? * len.unwrap_or(1));
                    }
                }
                Ok(max)
            }
            None => Err(format!("unknown type {ty}")),
        }
    }

    /// Whether a type is plain old data (no strings, no vectors), so its
    /// Rust type can be `Copy`.
    fn is_copy(&self, ty: &str) -> bool {
        if is_builtin(ty) {
            return true;
        }
        match self.defs.get(&api_name(ty)) {
            Some(Def::Enum { .. } | Def::Union(_)) => true,
            Some(Def::Alias { target, .. }) => self.is_copy(target),
            Some(Def::Struct(fields)) => fields.iter().all(|f| self.field_is_copy(f)),
            None => false,
        }
    }

    fn field_is_copy(&self, f: &Value) -> bool {
        matches!(parse_field(f), Ok(Field::Plain { ref ty, .. }) if self.is_copy(ty))
    }

    /// Rust type of a named or builtin type.
    fn rust_type(&self, ty: &str) -> Result<String, String> {
        if is_builtin(ty) {
            return Ok(ty.to_string());
        }
        let n = api_name(ty);
        if self.defs.contains_key(&n) {
            Ok(camel(&n))
        } else {
            Err(format!("unknown type {ty}"))
        }
    }

    fn field_decl(&self, f: &Field) -> Result<Option<(String, String)>, String> {
        Ok(Some(match f {
            Field::Plain { name, ty, len, .. } => {
                let t = self.rust_type(ty)?;
                let t = match len {
                    Some(n) => format!("[{t}; {n}]"),
                    None => t,
                };
                (field_ident(name), t)
            }
            Field::FixedString { name, .. } | Field::VarString { name } => {
                (field_ident(name), "String".to_string())
            }
            Field::Vla { name, ty, .. } => {
                (field_ident(name), format!("Vec<{}>", self.rust_type(ty)?))
            }
            Field::Rest { name } => (field_ident(name), "Vec<u8>".to_string()),
        }))
    }

    fn default_expr(&self, f: &Field) -> Result<String, String> {
        Ok(match f {
            Field::Plain { len: Some(n), .. } if *n > 32 => {
                "std::array::from_fn(|_| Default::default())".to_string()
            }
            Field::Plain {
                ty,
                default: Some(v),
                len: None,
                ..
            } => match v {
                Value::Bool(b) => b.to_string(),
                Value::Number(n) if is_builtin(ty) => {
                    if ty == "f64" {
                        format!("{n}f64")
                    } else {
                        format!("{n}")
                    }
                }
                Value::Number(n) => format!("{}({n})", self.rust_type(ty)?),
                _ => "Default::default()".to_string(),
            },
            _ => "Default::default()".to_string(),
        })
    }

    /// Emits a struct with Encode/Decode/Default for `fields`. `skip` names
    /// the header fields the framing layer owns.
    fn render_struct(
        &self,
        out: &mut String,
        rust_name: &str,
        doc: &str,
        fields: &[Value],
        skip: &[&str],
    ) -> Result<(), String> {
        let parsed: Vec<Field> = fields.iter().map(parse_field).collect::<Result<_, _>>()?;
        let counts: Vec<String> = parsed
            .iter()
            .filter_map(|f| match f {
                Field::Vla { count, .. } => Some(count.clone()),
                _ => None,
            })
            .collect();
        let field_name = |f: &Field| match f {
            Field::Plain { name, .. }
            | Field::FixedString { name, .. }
            | Field::VarString { name }
            | Field::Vla { name, .. }
            | Field::Rest { name } => name.clone(),
        };
        // Fields that appear in the struct: not header, not a VLA count.
        let visible: Vec<&Field> = parsed
            .iter()
            .filter(|f| {
                let n = field_name(f);
                !skip.contains(&n.as_str()) && !counts.contains(&n)
            })
            .collect();

        writeln!(out, "{doc}").unwrap();
        let copy = visible
            .iter()
            .all(|f| matches!(f, Field::Plain { ty, .. } if self.is_copy(ty)));
        let derives = if copy {
            "Debug, Clone, Copy, PartialEq"
        } else {
            "Debug, Clone, PartialEq"
        };
        writeln!(out, "#[derive({derives})]").unwrap();
        if visible.is_empty() {
            writeln!(out, "pub struct {rust_name};\n").unwrap();
        } else {
            writeln!(out, "pub struct {rust_name} {{").unwrap();
            for f in &visible {
                let (n, t) = self.field_decl(f)?.expect("declared");
                writeln!(out, "    pub {n}: {t},").unwrap();
            }
            writeln!(out, "}}\n").unwrap();
        }

        // Default: the .api defaults, as vpp_papi applies them.
        writeln!(out, "impl Default for {rust_name} {{").unwrap();
        writeln!(out, "    fn default() -> Self {{").unwrap();
        if visible.is_empty() {
            writeln!(out, "        Self").unwrap();
        } else {
            writeln!(out, "        Self {{").unwrap();
            for f in &visible {
                let (n, _) = self.field_decl(f)?.expect("declared");
                writeln!(out, "            {n}: {},", self.default_expr(f)?).unwrap();
            }
            writeln!(out, "        }}").unwrap();
        }
        writeln!(out, "    }}\n}}\n").unwrap();

        // Encode.
        let any_body = parsed
            .iter()
            .any(|f| !skip.contains(&field_name(f).as_str()));
        writeln!(out, "impl Encode for {rust_name} {{").unwrap();
        let w = if any_body { "w" } else { "_w" };
        writeln!(
            out,
            "    fn encode(&self, {w}: &mut Vec<u8>) -> Result<(), EncodeError> {{"
        )
        .unwrap();
        for f in &parsed {
            let raw = field_name(f);
            if skip.contains(&raw.as_str()) {
                continue;
            }
            let n = field_ident(&raw);
            if counts.contains(&raw) {
                // The count is derived from the array it sizes.
                let (arr, ty) = parsed
                    .iter()
                    .find_map(|g| match g {
                        Field::Vla { name, count, .. } if *count == raw => Some(name.clone()),
                        _ => None,
                    })
                    .zip(parsed.iter().find_map(|g| match g {
                        Field::Plain { name, ty, .. } if *name == raw => Some(ty.clone()),
                        _ => None,
                    }))
                    .ok_or_else(|| format!("{rust_name}: count {raw} without its array"))?;
                writeln!(
                    out,
                    "        encode_count::<{ty}>(self.{}.len(), \"{raw}\", w)?;",
                    field_ident(&arr)
                )
                .unwrap();
                continue;
            }
            match f {
                Field::Plain { .. } => writeln!(out, "        self.{n}.encode(w)?;").unwrap(),
                Field::FixedString { len, .. } => writeln!(
                    out,
                    "        encode_fixed_string(&self.{n}, {len}, \"{raw}\", w)?;"
                )
                .unwrap(),
                Field::VarString { .. } => {
                    writeln!(out, "        encode_var_string(&self.{n}, w)?;").unwrap()
                }
                Field::Vla { .. } => writeln!(
                    out,
                    "        for item in &self.{n} {{\n            item.encode(w)?;\n        }}"
                )
                .unwrap(),
                Field::Rest { .. } => {
                    writeln!(out, "        w.extend_from_slice(&self.{n});").unwrap()
                }
            }
        }
        writeln!(out, "        Ok(())\n    }}\n}}\n").unwrap();

        // Decode.
        writeln!(out, "impl Decode for {rust_name} {{").unwrap();
        let r = if any_body { "r" } else { "_r" };
        writeln!(
            out,
            "    fn decode({r}: &mut Reader<'_>) -> Result<Self, DecodeError> {{"
        )
        .unwrap();
        for f in &parsed {
            let raw = field_name(f);
            if skip.contains(&raw.as_str()) {
                continue;
            }
            let local = format!("f_{raw}");
            match f {
                Field::Plain { .. } => {
                    let (_, t) = self.field_decl(f)?.expect("declared");
                    writeln!(out, "        let {local}: {t} = Decode::decode(r)?;").unwrap()
                }
                Field::FixedString { len, .. } => {
                    writeln!(out, "        let {local} = decode_fixed_string(r, {len})?;").unwrap()
                }
                Field::VarString { .. } => {
                    writeln!(out, "        let {local} = decode_var_string(r)?;").unwrap()
                }
                Field::Vla { count, .. } => writeln!(
                    out,
                    "        let {local} = decode_vec(r, u64::from(f_{count}) as usize)?;"
                )
                .unwrap(),
                Field::Rest { .. } => {
                    writeln!(out, "        let {local} = r.rest().to_vec();").unwrap()
                }
            }
        }
        if visible.is_empty() {
            writeln!(out, "        Ok(Self)").unwrap();
        } else {
            writeln!(out, "        Ok(Self {{").unwrap();
            for f in &visible {
                let raw = field_name(f);
                writeln!(out, "            {}: f_{raw},", field_ident(&raw)).unwrap();
            }
            writeln!(out, "        }})").unwrap();
        }
        writeln!(out, "    }}\n}}\n").unwrap();
        Ok(())
    }

    fn render_def(&self, out: &mut String, name: &str) -> Result<(), String> {
        let rust = camel(name);
        match &self.defs[name] {
            Def::Struct(fields) => {
                self.render_struct(out, &rust, &format!("/// Type `{name}`."), fields, &[])?
            }
            Def::Alias { target, length } => {
                let t = self.rust_type(target)?;
                let t = match length {
                    Some(n) => format!("[{t}; {n}]"),
                    None => t,
                };
                writeln!(out, "/// Alias `{name}`.\npub type {rust} = {t};\n").unwrap();
            }
            Def::Enum { repr, values } => {
                writeln!(
                    out,
                    "/// Enum `{name}` ({repr} on the wire). A newtype rather than a Rust enum:\n\
                     /// VPP may send values outside the list, and they must still decode."
                )
                .unwrap();
                writeln!(
                    out,
                    "#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]\n\
                     pub struct {rust}(pub {repr});\n"
                )
                .unwrap();
                writeln!(out, "impl {rust} {{").unwrap();
                for (v, n) in values {
                    writeln!(out, "    /// `{v}`\n    pub const {v}: Self = Self({n});").unwrap();
                }
                writeln!(
                    out,
                    "\n    /// The symbolic name of the value, if it has one.\n    \
                     pub fn name(&self) -> Option<&'static str> {{\n        match self.0 {{"
                )
                .unwrap();
                let mut seen = std::collections::HashSet::new();
                for (v, n) in values {
                    if seen.insert(*n) {
                        writeln!(out, "            {n} => Some(\"{v}\"),").unwrap();
                    }
                }
                writeln!(out, "            _ => None,\n        }}\n    }}\n}}\n").unwrap();
                writeln!(
                    out,
                    "impl std::fmt::Debug for {rust} {{\n    \
                     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{\n        \
                     match self.name() {{\n            Some(n) => f.write_str(n),\n            \
                     None => write!(f, \"{rust}({{}})\", self.0),\n        }}\n    }}\n}}\n"
                )
                .unwrap();
                writeln!(
                    out,
                    "impl Encode for {rust} {{\n    \
                     fn encode(&self, w: &mut Vec<u8>) -> Result<(), EncodeError> {{\n        \
                     self.0.encode(w)\n    }}\n}}\n\n\
                     impl Decode for {rust} {{\n    \
                     fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {{\n        \
                     Ok(Self(Decode::decode(r)?))\n    }}\n}}\n"
                )
                .unwrap();
            }
            Def::Union(fields) => {
                let size = self.size_of(name)?;
                writeln!(
                    out,
                    "/// Union `{name}`: {size} raw bytes; the active member is written at\n\
                     /// offset 0 and the rest is zero. The discriminator lives outside."
                )
                .unwrap();
                writeln!(
                    out,
                    "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]\n\
                     pub struct {rust}(pub [u8; {size}]);\n"
                )
                .unwrap();
                writeln!(out, "impl {rust} {{").unwrap();
                for f in fields {
                    let Field::Plain {
                        name: m, ty, len, ..
                    } = parse_field(f)?
                    else {
                        return Err(format!("union {name}: unsupported member"));
                    };
                    let t = self.rust_type(&ty)?;
                    let t = match len {
                        Some(n) => format!("[{t}; {n}]"),
                        None => t,
                    };
                    writeln!(
                        out,
                        "    /// Reads member `{m}`.\n    \
                         pub fn {m}(&self) -> {t} {{\n        \
                         Decode::decode(&mut Reader::new(&self.0)).expect(\"a member fits its union\")\n    }}\n\n    \
                         /// A union holding member `{m}`.\n    \
                         pub fn from_{m}(value: &{t}) -> Self {{\n        \
                         let mut buf = Vec::with_capacity({size});\n        \
                         value.encode(&mut buf).expect(\"fixed-size member\");\n        \
                         let mut bytes = [0u8; {size}];\n        \
                         bytes[..buf.len()].copy_from_slice(&buf);\n        \
                         Self(bytes)\n    }}\n"
                    )
                    .unwrap();
                }
                writeln!(out, "}}\n").unwrap();
                writeln!(
                    out,
                    "impl Encode for {rust} {{\n    \
                     fn encode(&self, w: &mut Vec<u8>) -> Result<(), EncodeError> {{\n        \
                     w.extend_from_slice(&self.0);\n        Ok(())\n    }}\n}}\n\n\
                     impl Decode for {rust} {{\n    \
                     fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {{\n        \
                     Ok(Self(Decode::decode(r)?))\n    }}\n}}\n"
                )
                .unwrap();
            }
        }
        Ok(())
    }

    fn render_module(&self, m: &Module) -> Result<String, String> {
        let mut out = String::new();
        writeln!(
            out,
            "//! Module `{}` {}: generated by `cargo xtask binapi` from `{}`.\n\
             //! Do not edit; regenerate.\n",
            m.name, m.version, m.file
        )
        .unwrap();
        writeln!(out, "#![allow(non_upper_case_globals, clippy::all)]\n").unwrap();
        writeln!(out, "#[allow(unused_imports)]\nuse super::*;").unwrap();
        writeln!(out, "#[allow(unused_imports)]\nuse crate::wire::*;\n").unwrap();
        for name in &m.owned {
            self.render_def(&mut out, name)?;
        }
        let replies: HashMap<&str, (&str, bool)> = m
            .services
            .iter()
            .map(|(req, (rep, stream))| (req.as_str(), (rep.as_str(), *stream)))
            .collect();
        for (name, fields, crc) in &m.messages {
            let names: Vec<&str> = fields
                .iter()
                .filter_map(|f| f.get(1).and_then(Value::as_str))
                .collect();
            let header = if names.get(1..3) == Some(&["client_index", "context"][..]) {
                "Request"
            } else if names.get(1) == Some(&"context") {
                "Reply"
            } else {
                "Bare"
            };
            let skip: &[&str] = match header {
                "Request" => &["_vl_msg_id", "client_index", "context"],
                "Reply" => &["_vl_msg_id", "context"],
                _ => &["_vl_msg_id"],
            };
            let rust = camel(name);
            let crc_hex = crc.trim_start_matches("0x");
            self.render_struct(
                &mut out,
                &rust,
                &format!("/// Message `{name}` (CRC {crc})."),
                fields,
                skip,
            )?;
            let has_i32_retval = fields.iter().any(|f| {
                f.get(0).and_then(Value::as_str) == Some("i32")
                    && f.get(1).and_then(Value::as_str) == Some("retval")
            });
            let retval = if has_i32_retval {
                "\n    fn retval(&self) -> Option<i32> {\n        Some(self.retval)\n    }"
            } else {
                ""
            };
            writeln!(
                out,
                "impl Message for {rust} {{\n    \
                 const NAME: &'static str = \"{name}\";\n    \
                 const CRC: u32 = {crc};\n    \
                 const NAME_CRC: &'static str = \"{name}_{crc_hex}\";\n    \
                 const HEADER: Header = Header::{header};{retval}\n}}\n"
            )
            .unwrap();
            if let Some((reply, stream)) = replies.get(name.as_str()) {
                let reply = camel(reply);
                if *stream {
                    writeln!(
                        out,
                        "impl Dump for {rust} {{\n    type Details = {reply};\n}}\n"
                    )
                    .unwrap();
                } else {
                    writeln!(
                        out,
                        "impl Request for {rust} {{\n    type Reply = {reply};\n}}\n"
                    )
                    .unwrap();
                }
            }
        }
        Ok(out.trim_end().to_string() + "\n")
    }

    fn render_index(&self, modules: &[Module]) -> String {
        let mut out = String::new();
        writeln!(
            out,
            "//! VPP binary-API bindings generated by `cargo xtask binapi` from VPP's\n\
             //! `.api.json` files (FD.io VPP, Apache-2.0). Do not edit; regenerate.\n"
        )
        .unwrap();
        // Sorted, as rustfmt would have them.
        let mut names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        for name in &names {
            writeln!(
                out,
                "#[rustfmt::skip]\n#[allow(missing_docs)]\npub mod {name};"
            )
            .unwrap();
        }
        writeln!(out).unwrap();
        for name in &names {
            writeln!(out, "pub use {name}::*;").unwrap();
        }
        writeln!(
            out,
            "\n/// Every message of every module: (module, name, CRC), in module order\n\
             /// and, within a module, in `.api.json` order (VPP numbers memclnt's\n\
             /// messages 1.. in this order).\n\
             pub const MESSAGES: &[(&str, &str, u32)] = &["
        )
        .unwrap();
        // memclnt first: its ids are static in VPP.
        let mut ordered: Vec<&Module> = modules.iter().filter(|m| m.name == "memclnt").collect();
        ordered.extend(modules.iter().filter(|m| m.name != "memclnt"));
        for m in ordered {
            for (name, _, crc) in &m.messages {
                writeln!(out, "    (\"{}\", \"{name}\", {crc}),", m.name).unwrap();
            }
        }
        writeln!(out, "];").unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The committed bindings are exactly what the generator makes from the
    /// API files; edit the generator or the JSON, never the output.
    #[test]
    fn committed_bindings_are_current() {
        let Some(api_dir) = default_api_dir(&root()) else {
            eprintln!(
                "\n*** SKIPPED: no VPP API dir (../shared/vpp-api or /usr/share/vpp/api) ***\n"
            );
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        generate(&api_dir, dir.path()).unwrap();
        let committed = root().join(OUTPUT_DIR);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut stale = Vec::new();
        for name in &names {
            let fresh = std::fs::read_to_string(dir.path().join(name)).unwrap();
            let old = std::fs::read_to_string(committed.join(name)).unwrap_or_default();
            if fresh != old {
                stale.push(name.clone());
            }
        }
        let committed_names = std::fs::read_dir(&committed)
            .unwrap()
            .filter(|e| {
                !names.contains(
                    &e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .into_owned(),
                )
            })
            .count();
        assert!(
            stale.is_empty() && committed_names == 0,
            "bindings out of date: {stale:?}; run `cargo xtask binapi`"
        );
    }

    #[test]
    fn every_module_and_definition_is_generated() {
        let Some(api_dir) = default_api_dir(&root()) else {
            return;
        };
        let files = render(&api_dir).unwrap();
        assert_eq!(files.len(), MODULES.len() + 1);
        let lb = &files["lb.rs"];
        for needle in [
            "pub struct LbAddDelVipV2 {",
            "const NAME_CRC: &'static str = \"lb_as_v2_details_90064aae\";",
            "impl Dump for LbAsV2Dump {",
            "impl Request for LbAsSetWeight {",
            "new_flows_table_length: 1024,",
        ] {
            assert!(lb.contains(needle), "lb.rs lacks {needle}");
        }
        // Imported definitions live once, in their own module.
        assert!(files["ip_types.rs"].contains("pub struct AddressUnion(pub [u8; 16]);"));
        assert!(!lb.contains("pub struct AddressUnion"));
        assert!(files["lb_types.rs"].contains("pub struct LbEncapType(pub u32);"));
    }
}
