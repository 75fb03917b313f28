//! Chat templates: a checkpoint's Jinja template rendered as transformers
//! renders it, so that a chat or reasoning model sees the conversation it
//! was trained on.
//!
//! A Hugging Face checkpoint keeps its template in `chat_template.jinja`
//! or in `tokenizer_config.json`'s `chat_template` (a string, or a list of
//! named templates of which `"default"` is used); the `.jinja` file wins,
//! as in transformers. [`ChatTemplate::from_dir`] reads it once and
//! compiles it with [minijinja](https://docs.rs/minijinja), set up like
//! transformers' sandboxed Jinja environment: `trim_blocks` and
//! `lstrip_blocks` on, loop controls, Python string and dict methods
//! (`.strip()`, `.startswith()`, `.split()`, `.items()`, ... from
//! minijinja-contrib's pycompat), a `tojson` that writes Python's
//! `json.dumps` text (`", "` and `": "` separators, non-ASCII kept, `<` not
//! escaped), `raise_exception(message)`, `strftime_now(format)` (UTC), and
//! Python's spelling of `True`, `False` and `None` in output. The variables
//! are `messages`, `add_generation_prompt`, the special tokens of
//! `tokenizer_config.json` (`bos_token`, `eos_token`, ... given as strings
//! or as `AddedToken` objects; absent ones are undefined) and, when set,
//! `enable_thinking`; `tools` and `documents` are undefined. Message keys
//! whose value is `null` are dropped and a message's reasoning
//! (`reasoning_content`, `thinking` or `reasoning`) is offered under the
//! first two names, as transformers does. `{% generation %}` blocks (used by
//! transformers only for assistant masks) render their body.
//!
//! The rendered text is tokenized *without* adding special tokens again
//! (transformers' `apply_chat_template(..., tokenize=True)` passes
//! `add_special_tokens=False`): the template writes BOS itself.
//! `fixtures/chat/expected.json`, written by `tools/make_chat_fixtures.py`
//! with transformers, pins token-for-token equality for a Qwen3-style, a
//! Llama-3-style and a deliberately unusual template.
//!
//! [`Prompt`] is what the commands build prompts from (plain text or a
//! list of messages) and [`ChatSettings`] the `--chat-template
//! auto|on|off` and `--enable-thinking` flags that decide whether the
//! template is applied: a message list always goes through it, plain text
//! only with `on` (as one user message).
//!
//! Every failure is one line naming the file and the Jinja error, e.g.
//! `m/tokenizer_config.json: field `chat_template`: cannot render: ...`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use minijinja::value::{Kwargs, Value as JValue, ValueKind};
use minijinja::{Environment, Error as JError, ErrorKind, State};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::json_kind;
use crate::error::{ModelError, Result};
use crate::pretrained::Pretrained;

/// Name of the compiled template inside its environment.
const NAME: &str = "chat_template";

/// The special-token keys of `tokenizer_config.json` offered to templates.
const SPECIAL_KEYS: &[&str] = &[
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// Largest template accepted, in bytes (real ones are a few KiB).
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    /// The file the template was read from.
    source: PathBuf,
    env: Environment<'static>,
    /// `bos_token`, `eos_token`, ... as strings.
    special: Map<String, Value>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("special", &self.special)
            .finish()
    }
}

/// Options of one rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Append the header that opens the assistant's turn.
    pub add_generation_prompt: bool,
    /// `enable_thinking` for Qwen3-style templates; `None` leaves it
    /// undefined (the template's default).
    pub enable_thinking: Option<bool>,
}

impl ChatTemplate {
    /// Reads the template of a checkpoint directory: `chat_template.jinja`
    /// if present, else `tokenizer_config.json`'s `chat_template`. `Ok(None)`
    /// when the directory has neither.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Option<Self>> {
        let dir = dir.as_ref();
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.is_file() {
            read_json_object(&config_path)?
        } else {
            Map::new()
        };
        let mut special = special_tokens(&config, &config_path)?;
        // Older checkpoints keep the tokens in special_tokens_map.json.
        let map_path = dir.join("special_tokens_map.json");
        if map_path.is_file() {
            for (key, value) in special_tokens(&read_json_object(&map_path)?, &map_path)? {
                special.entry(key).or_insert(value);
            }
        }
        let jinja_path = dir.join("chat_template.jinja");
        if jinja_path.is_file() {
            let text = read_text(&jinja_path)?;
            return Self::new(&jinja_path, &text, special).map(Some);
        }
        let template = match config.get("chat_template") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(list)) => pick_default(list, &config_path)?,
            Some(other) => {
                return Err(bad(
                    &config_path,
                    format!(
                    "expected a string or a list of {{\"name\", \"template\"}} objects, found {}",
                    json_kind(other)
                ),
                ))
            }
        };
        Self::new(&config_path, &template, special).map(Some)
    }

    /// Compiles `template`; `source` names it in errors, `special` holds
    /// the special tokens (`bos_token`, ...) as JSON strings.
    pub fn new(source: &Path, template: &str, special: Map<String, Value>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, without_generation_tags(template))
            .map_err(|e| bad(source, format!("cannot compile: {}", jinja_message(&e))))?;
        Ok(ChatTemplate {
            source: source.to_path_buf(),
            env,
            special,
        })
    }

    /// The file the template came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Renders a conversation: each message a JSON object with a string
    /// `role` (other keys are passed through).
    pub fn render(&self, messages: &[Value], opts: &RenderOptions) -> Result<String> {
        let messages = normalize_messages(messages).map_err(|msg| ModelError::InvalidArgument {
            name: "messages",
            msg,
        })?;
        let mut ctx = self.special.clone();
        ctx.insert("messages".into(), Value::Array(messages));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::Bool(opts.add_generation_prompt),
        );
        if let Some(thinking) = opts.enable_thinking {
            ctx.insert("enable_thinking".into(), Value::Bool(thinking));
        }
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| bad(&self.source, jinja_message(&e)))?;
        template.render(JValue::from_serialize(&ctx)).map_err(|e| {
            bad(
                &self.source,
                format!("cannot render: {}", jinja_message(&e)),
            )
        })
    }
}

/// A prompt as a command receives it; as JSON, a string or a list of
/// messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// Plain text, tokenized as is unless `--chat-template on`.
    Text(String),
    /// A conversation (`[{"role": ..., "content": ...}, ...]`), always
    /// rendered with the checkpoint's template.
    Messages(Vec<Value>),
}

impl From<String> for Prompt {
    fn from(text: String) -> Self {
        Prompt::Text(text)
    }
}

impl From<&str> for Prompt {
    fn from(text: &str) -> Self {
        Prompt::Text(text.to_string())
    }
}

impl Prompt {
    /// A prompt from JSON: a string is text, an array of objects a
    /// conversation; anything else is an error naming what was found.
    pub fn from_json(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::String(s) => Ok(Prompt::Text(s.clone())),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err("expected a non-empty list of messages, found []".into());
                }
                for (i, item) in items.iter().enumerate() {
                    check_message(item).map_err(|m| format!("message {i}: {m}"))?;
                }
                Ok(Prompt::Messages(items.clone()))
            }
            other => Err(format!(
                "expected a string or a list of {{\"role\", \"content\"}} messages, found {}",
                json_kind(other)
            )),
        }
    }

    /// The text of the prompt for display: the text itself, or the
    /// messages' contents joined by newlines.
    pub fn display_text(&self) -> String {
        match self {
            Prompt::Text(s) => s.clone(),
            Prompt::Messages(m) => m
                .iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// When the chat template is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChatMode {
    /// Message lists go through the template, plain text does not.
    #[default]
    Auto,
    /// Plain text too, as one user message.
    On,
    /// Never; a message list is an error.
    Off,
}

impl fmt::Display for ChatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChatMode::Auto => "auto",
            ChatMode::On => "on",
            ChatMode::Off => "off",
        })
    }
}

impl FromStr for ChatMode {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "auto" => Ok(ChatMode::Auto),
            "on" => Ok(ChatMode::On),
            "off" => Ok(ChatMode::Off),
            other => Err(ModelError::InvalidArgument {
                name: "chat-template",
                msg: format!("'{other}': expected auto, on or off"),
            }),
        }
    }
}

impl Serialize for ChatMode {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChatMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The `--chat-template` and `--enable-thinking` flags (and config keys),
/// for every command that builds prompts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct ChatSettings {
    /// Apply the checkpoint's chat template: auto (to message lists only),
    /// on (plain text too, as one user message) or off. Default auto.
    #[cfg_attr(
        feature = "clap",
        arg(long = "chat-template", value_name = "MODE", default_value_t = ChatMode::Auto)
    )]
    pub chat_template: ChatMode,
    /// `enable_thinking` for Qwen3-style templates (true or false); unset
    /// leaves the template's default.
    #[cfg_attr(feature = "clap", arg(long, value_name = "BOOL"))]
    pub enable_thinking: Option<bool>,
}

impl ChatSettings {
    /// The conversation `prompt` becomes under these settings, or `None`
    /// when it is plain text to tokenize as is; a message list with
    /// `--chat-template off` is an error.
    pub fn messages(&self, prompt: &Prompt) -> Result<Option<Vec<Value>>> {
        match (prompt, self.chat_template) {
            (Prompt::Text(_), ChatMode::Auto | ChatMode::Off) => Ok(None),
            (Prompt::Text(text), ChatMode::On) => Ok(Some(vec![
                serde_json::json!({"role": "user", "content": text}),
            ])),
            (Prompt::Messages(_), ChatMode::Off) => Err(ModelError::InvalidArgument {
                name: "chat-template",
                msg: "off, but the prompt is a list of messages (it needs the template; \
                      give plain text or --chat-template auto)"
                    .into(),
            }),
            (Prompt::Messages(m), _) => Ok(Some(m.clone())),
        }
    }

    /// Loads `dir`'s template when these settings may need it (`None` with
    /// `--chat-template off`); a missing template is an error only once a
    /// prompt needs it.
    pub fn load_template(&self, dir: &Path) -> Result<Option<ChatTemplate>> {
        match self.chat_template {
            ChatMode::Off => Ok(None),
            ChatMode::Auto | ChatMode::On => ChatTemplate::from_dir(dir),
        }
    }

    /// The text the model sees: the rendered conversation (with the
    /// generation prompt), or the plain text. `template` is `dir`'s, from
    /// [`Self::load_template`].
    pub fn render(
        &self,
        dir: &Path,
        template: Option<&ChatTemplate>,
        prompt: &Prompt,
    ) -> Result<(String, bool)> {
        let Some(messages) = self.messages(prompt)? else {
            return Ok((prompt.display_text(), false));
        };
        let template = template.ok_or_else(|| ModelError::MissingFile {
            path: dir.join("chat_template.jinja"),
            what: "a chat template (chat_template.jinja or `chat_template` in \
                   tokenizer_config.json) to render a list of messages",
        })?;
        let text = template.render(
            &messages,
            &RenderOptions {
                add_generation_prompt: true,
                enable_thinking: self.enable_thinking,
            },
        )?;
        Ok((text, true))
    }

    /// The prompt's ids for `model`: rendered with `template` and tokenized
    /// without added special tokens (as transformers'
    /// `apply_chat_template(..., tokenize=True)`), or plain text tokenized
    /// as before (with the tokenizer's special tokens).
    pub fn encode_with(
        &self,
        model: &Pretrained,
        template: Option<&ChatTemplate>,
        prompt: &Prompt,
    ) -> Result<Vec<u32>> {
        let (text, templated) = self.render(&model.dir, template, prompt)?;
        model.encode_with(&text, !templated)
    }

    /// [`Self::encode_with`], loading the model directory's template.
    pub fn encode(&self, model: &Pretrained, prompt: &Prompt) -> Result<Vec<u32>> {
        Ok(self
            .encode_all(model, std::slice::from_ref(prompt))?
            .remove(0))
    }

    /// [`Self::encode`] for many prompts, reading and compiling the model
    /// directory's template at most once (and only if a prompt needs it).
    pub fn encode_all(&self, model: &Pretrained, prompts: &[Prompt]) -> Result<Vec<Vec<u32>>> {
        let mut template: Option<Option<ChatTemplate>> = None;
        let mut out = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let t = match self.messages(prompt)? {
                Some(_) => {
                    if template.is_none() {
                        template = Some(self.load_template(&model.dir)?);
                    }
                    template.as_ref().and_then(Option::as_ref)
                }
                None => None,
            };
            out.push(self.encode_with(model, t, prompt)?);
        }
        Ok(out)
    }
}

fn check_message(value: &Value) -> std::result::Result<(), String> {
    let Value::Object(object) = value else {
        return Err(format!("expected an object, found {}", json_kind(value)));
    };
    match object.get("role") {
        Some(Value::String(_)) => Ok(()),
        Some(other) => Err(format!(
            "expected \"role\" to be a string, found {}",
            json_kind(other)
        )),
        None => Err("expected a \"role\" field".into()),
    }
}

/// transformers' normalisation: keys with `null` values dropped, the
/// reasoning aliased under `thinking` and `reasoning_content`.
fn normalize_messages(messages: &[Value]) -> std::result::Result<Vec<Value>, String> {
    const REASONING: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];
    let mut out = Vec::with_capacity(messages.len());
    if messages.is_empty() {
        return Err("expected at least one message, found none".into());
    }
    for (i, message) in messages.iter().enumerate() {
        check_message(message).map_err(|m| format!("message {i}: {m}"))?;
        let Value::Object(object) = message else {
            unreachable!("checked")
        };
        let mut object: Map<String, Value> = object
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(reasoning) = REASONING.iter().find_map(|k| object.get(*k).cloned()) {
            // {"thinking": r, **message, "reasoning_content": r}
            let mut aliased = Map::new();
            aliased.insert("thinking".into(), reasoning.clone());
            for (k, v) in object {
                aliased.insert(k, v);
            }
            aliased.insert("reasoning_content".into(), reasoning);
            object = aliased;
        }
        out.push(Value::Object(object));
    }
    Ok(out)
}

fn pick_default(list: &[Value], path: &Path) -> Result<String> {
    let mut names = Vec::new();
    for item in list {
        let name = item.get("name").and_then(Value::as_str);
        let template = item.get("template").and_then(Value::as_str);
        match (name, template) {
            (Some("default"), Some(t)) => return Ok(t.to_string()),
            (Some(n), Some(_)) => names.push(n.to_string()),
            _ => return Err(bad(
                path,
                "expected each entry of the list to be {\"name\": string, \"template\": string}"
                    .into(),
            )),
        }
    }
    Err(bad(
        path,
        format!(
            "a list of named templates without \"default\" (found {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    ))
}

fn special_tokens(config: &Map<String, Value>, path: &Path) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for key in SPECIAL_KEYS {
        let token =
            match config.get(*key) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => match o.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err(ModelError::InvalidConfig {
                        path: path.to_path_buf(),
                        field: key.to_string(),
                        msg: "expected a string or an AddedToken object with a string \"content\""
                            .into(),
                    }),
                },
                Some(other) => {
                    return Err(ModelError::InvalidConfig {
                        path: path.to_path_buf(),
                        field: key.to_string(),
                        msg: format!(
                            "expected a string or an AddedToken object, found {}",
                            json_kind(other)
                        ),
                    })
                }
            };
        out.insert(key.to_string(), Value::String(token));
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
    if meta.len() > MAX_TEMPLATE_BYTES {
        return Err(bad(
            path,
            format!(
                "{} bytes, more than the {MAX_TEMPLATE_BYTES}-byte limit",
                meta.len()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))
}

fn read_json_object(path: &Path) -> Result<Map<String, Value>> {
    let text = read_text(path)?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(ModelError::Json {
            path: path.to_path_buf(),
            msg: format!("expected an object, found {}", json_kind(&other)),
        }),
        Err(e) => Err(ModelError::Json {
            path: path.to_path_buf(),
            msg: e.to_string(),
        }),
    }
}

fn bad(path: &Path, msg: String) -> ModelError {
    ModelError::InvalidConfig {
        path: path.to_path_buf(),
        field: NAME.into(),
        msg,
    }
}

/// A Jinja error on one line: its message, the line of the template, and
/// the messages of its causes.
fn jinja_message(e: &JError) -> String {
    let mut msg = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (template line {line})"));
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(&format!(": {c}"));
        cause = c.source();
    }
    msg.replace('\n', " ")
}

/// `{% generation %}` / `{% endgeneration %}` (transformers' assistant-mask
/// extension) become `{% if true %}` / `{% endif %}` with the same
/// whitespace control, so the body renders exactly as before.
fn without_generation_tags(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (open, body) = match inner.strip_prefix(['-', '+']) {
            Some(b) => (&inner[..1], b),
            None => ("", inner),
        };
        let (body, close) = match body.strip_suffix(['-', '+']) {
            Some(b) => (b, &body[b.len()..]),
            None => (body, ""),
        };
        let replacement = match body.trim() {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(r) => out.push_str(&format!("{{%{open} {r} {close}%}}")),
            None => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Output like Jinja2 under Python: `True`, `False`, `None`.
fn python_formatter(
    out: &mut minijinja::Output<'_>,
    state: &State<'_, '_>,
    value: &JValue,
) -> std::result::Result<(), JError> {
    match value.kind() {
        ValueKind::Bool => {
            let text = if value.is_true() { "True" } else { "False" };
            out.write_str(text).map_err(JError::from)
        }
        ValueKind::None => out.write_str("None").map_err(JError::from),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn raise_exception(message: String) -> std::result::Result<JValue, JError> {
    Err(JError::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {message}"),
    ))
}

/// transformers' `tojson`: Python's `json.dumps(x, ensure_ascii=False,
/// indent=None, separators=None, sort_keys=False)`.
fn tojson(value: JValue, kwargs: Kwargs) -> std::result::Result<JValue, JError> {
    let indent: Option<JValue> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let separators: Option<JValue> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(match v.kind() {
            ValueKind::Number => " ".repeat(usize::try_from(v.clone()).unwrap_or(0).min(64)),
            ValueKind::String => v.as_str().unwrap_or("").to_string(),
            _ => {
                return Err(JError::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be a number or a string",
                ))
            }
        }),
    };
    let (item_sep, key_sep) = match separators {
        Some(s) if !s.is_none() => {
            let a = s.get_item(&JValue::from(0))?;
            let b = s.get_item(&JValue::from(1))?;
            (
                a.as_str().unwrap_or(",").to_string(),
                b.as_str().unwrap_or(":").to_string(),
            )
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let json = serde_json::to_value(&value).map_err(|e| {
        JError::new(
            ErrorKind::InvalidOperation,
            format!("tojson: cannot serialize: {e}"),
        )
    })?;
    let mut out = String::new();
    let style = JsonStyle {
        indent: indent.as_deref(),
        item_sep: &item_sep,
        key_sep: &key_sep,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    write_json(&mut out, &json, &style, 0);
    Ok(JValue::from(out))
}

struct JsonStyle<'a> {
    indent: Option<&'a str>,
    item_sep: &'a str,
    key_sep: &'a str,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn write_json(out: &mut String, value: &Value, style: &JsonStyle<'_>, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = style.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                out.push_str(&python_float(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_json_string(out, s, style.ensure_ascii),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, style, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if style.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item_sep);
                }
                newline(out, depth + 1);
                write_json_string(out, k, style.ensure_ascii);
                out.push_str(style.key_sep);
                write_json(out, v, style, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

/// Python's `repr(float)` for finite values (`1.0`, `0.5`, `1e+20`).
fn python_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Scientific: Rust writes 1e20 / 1.5e-7; Python 1e+20 / 1.5e-07.
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn write_json_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `strftime_now(format)`: the current UTC time formatted with the common
/// `strftime` codes (`%d %m %Y %y %b %B %a %A %H %M %S %j %%`).
fn strftime_now(format: String) -> std::result::Result<JValue, JError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime(secs, &format).map(JValue::from)
}

fn strftime(secs: i64, format: &str) -> std::result::Result<String, JError> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('b') => out.push_str(&MONTHS[(month - 1) as usize][..3]),
            Some('B') => out.push_str(MONTHS[(month - 1) as usize]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            other => {
                return Err(JError::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "strftime_now: unsupported code %{} (supported: %d %m %Y %y %b %B %a %A %H %M %S %j %%)",
                        other.map(String::from).unwrap_or_default()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// Proleptic Gregorian date of a day number (days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day number (days since 1970-01-01) of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(text: &str) -> ChatTemplate {
        ChatTemplate::new(Path::new("t.jinja"), text, Map::new()).unwrap()
    }

    fn render(text: &str, messages: Value) -> Result<String> {
        template(text).render(
            messages.as_array().unwrap(),
            &RenderOptions {
                add_generation_prompt: true,
                enable_thinking: None,
            },
        )
    }

    #[test]
    fn tojson_writes_python_json() {
        let out = render(
            "{{ messages[0] | tojson }}|{{ messages[0].x | tojson(indent=2) }}",
            json!([{"role": "user", "content": "café <b>", "x": [1, 2.5, 1e20, {"a": null}]}]),
        )
        .unwrap();
        assert_eq!(
            out,
            "{\"role\": \"user\", \"content\": \"café <b>\", \"x\": [1, 2.5, 1e+20, {\"a\": null}]}|\
             [\n  1,\n  2.5,\n  1e+20,\n  {\n    \"a\": null\n  }\n]"
        );
    }

    #[test]
    fn python_spellings_and_raise_exception() {
        let out = render(
            "{{ add_generation_prompt }} {{ none }} {{ 'a,b'.split(',') | length }}",
            json!([{"role": "user"}]),
        )
        .unwrap();
        assert_eq!(out, "True None 2");
        let e = render(
            "{{ raise_exception('no system role') }}",
            json!([{"role": "x"}]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("t.jinja: field `chat_template`: cannot render:"),
            "{e}"
        );
        assert!(e.contains("no system role"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let e = ChatTemplate::new(
            Path::new("m/chat_template.jinja"),
            "a\n{% if %}",
            Map::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "m/chat_template.jinja: field `chat_template`: cannot compile: syntax error"
            ),
            "{e}"
        );
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn generation_tags_render_their_body() {
        let out = render(
            "{% for m in messages %}{%- generation -%} [{{ m.role }}] {%- endgeneration %}{% endfor %}",
            json!([{"role": "a"}, {"role": "b"}]),
        )
        .unwrap();
        assert_eq!(out, "[a][b]");
    }

    #[test]
    fn null_keys_are_dropped_and_reasoning_aliased() {
        let out = render(
            "{% for m in messages %}{{ m.content is defined }}/{{ m.thinking }}/{{ m.reasoning_content }};{% endfor %}",
            json!([{"role": "assistant", "content": null, "reasoning": "r"}, {"role": "user", "content": "c"}]),
        )
        .unwrap();
        assert_eq!(out, "False/r/r;True//;");
    }

    #[test]
    fn strftime_matches_known_dates() {
        // 2024-07-26 12:34:56 UTC was a Friday, day 208 of a leap year.
        let secs = 1_721_997_296;
        assert_eq!(
            strftime(secs, "%d %b %Y|%A %B %j %H:%M:%S %y %m %%").unwrap(),
            "26 Jul 2024|Friday July 208 12:34:56 24 07 %"
        );
        assert_eq!(strftime(0, "%Y-%m-%d %a").unwrap(), "1970-01-01 Thu");
        assert!(strftime(0, "%Q").is_err());
    }

    #[test]
    fn prompts_from_json() {
        assert_eq!(
            Prompt::from_json(&json!("hi")).unwrap(),
            Prompt::Text("hi".into())
        );
        assert!(matches!(
            Prompt::from_json(&json!([{"role": "user", "content": "x"}])).unwrap(),
            Prompt::Messages(_)
        ));
        assert!(Prompt::from_json(&json!([]))
            .unwrap_err()
            .contains("non-empty"));
        assert!(Prompt::from_json(&json!([{"content": "x"}]))
            .unwrap_err()
            .contains("message 0: expected a \"role\" field"));
        assert!(Prompt::from_json(&json!(3))
            .unwrap_err()
            .contains("found a number"));
        assert_eq!("on".parse::<ChatMode>().unwrap(), ChatMode::On);
        let e = "maybe".parse::<ChatMode>().unwrap_err().to_string();
        assert!(e.contains("'maybe': expected auto, on or off"), "{e}");
    }
}
