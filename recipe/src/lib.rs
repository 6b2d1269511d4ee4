//! Language recipes: everything CodeBeaker knows about a language, as data.
//!
//! A language is a directory `languages/<name>/` holding `language.toml` (the recipe),
//! its wrapper templates and any helper its commands name, and optionally `image/` (what
//! the image build installs: `docker/build-images.sh` reads that part, never this crate).
//! The agent (inside the container), the pool and the gateway all read the same recipe,
//! so adding a language touches no Rust code.
//!
//! The agent reads one recipe ([`Recipe::load`]); the gateway reads them all with their
//! templates ([`Registry::load`]). The directory is mounted read-only into every container
//! at [`CONTAINER_DIR`], and `{dir}` in a recipe's commands is the language's directory
//! there.
#![forbid(unsafe_code)]

use codebeaker_proto::Language;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the languages directory is mounted (read-only) in every runtime container.
pub const CONTAINER_DIR: &str = "/opt/codebeaker-languages";
/// The recipe file inside a language's directory.
pub const RECIPE_FILE: &str = "language.toml";
/// The line a wrapper template carries exactly once, replaced by the user's code.
pub const CODE_MARKER: &str = "{{code}}";

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A configured language name that no recipe declares.
#[derive(Debug, thiserror::Error)]
#[error("no language named {name:?} in the languages directory (it has: {})", known.join(", "))]
pub struct UnknownLanguage {
    pub name: String,
    pub known: Vec<String>,
}

/// One language's recipe (`languages/<name>/language.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The canonical name: the API's, the config keys', the container labels'.
    pub name: Language,
    /// The display name.
    pub title: String,
    /// Other accepted names (matched ignoring ASCII case).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The program's file name in `/workspace`.
    pub file: String,
    /// The image recipe it runs in (`codebeaker-<image>`); its own name by default.
    #[serde(default)]
    pub image: Option<String>,
    /// The version probe: the first line of its output is the toolchain version (part of
    /// the compile cache key).
    pub version: Vec<String>,
    /// A one-line caveat for users (shown by `GET /v1/languages`).
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub compile: Option<Compile>,
    pub run: Run,
    #[serde(default)]
    pub resident: Option<Resident>,
    #[serde(default)]
    pub launcher: Option<Launcher>,
    pub wrap: Wrap,
    /// The Judge0 CE language ids this language answers to (`/submissions`'
    /// `language_id`), as Judge0 CE 1.13.1 numbers its languages; none: not offered there.
    #[serde(default)]
    pub judge0: Vec<u32>,
}

/// How a language compiles. `{source}` is the program file, `{artifact}` the output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compile {
    pub argv: Vec<String>,
    /// The artifact's file name: one self-contained file, cached by content. Its
    /// extension is kept in the shared cache (Mono wants its `.exe`).
    pub artifact: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A source translation built into the agent, applied before compiling.
    #[serde(default)]
    pub translate: Option<Translator>,
}

/// The source translations the agent knows. A translation is code, not data: naming one
/// here is the "one registration line" a language may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Translator {
    /// C# top-level statements into a class with `Main` (agent `csharp.rs`).
    CsharpTopLevel,
}

impl Translator {
    /// Part of the artifact key: bump it whenever the translation's output changes, so
    /// that no cached build is reused.
    pub fn version(self) -> &'static str {
        match self {
            Translator::CsharpTopLevel => "cs-toplevel-1",
        }
    }
}

/// How a language's program is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A fresh process per call: `argv`, with `{program}` the artifact or the source.
    #[default]
    Exec,
    /// A runner started ahead of the call reads the program's path on its stdin.
    Prestart,
    /// A pre-initialised interpreter forks one child per program (`{uid}` in the argv).
    Zygote,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    #[serde(default)]
    pub kind: RunKind,
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// For interpreted languages: a failed run whose stderr contains one of these is a
    /// `compile_error` (a syntax error), not a `runtime_error`.
    #[serde(default)]
    pub compile_error_stderr: Vec<String>,
}

/// The resident runner of `"isolation": "program"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resident {
    /// `{program}` the program (or its staged artifact), `{mode}` `edge` or `plain`,
    /// `{launcher}` the compiled launcher.
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The runtime starts and stops OS threads of its own: a left-behind call is judged by
    /// processes only, and by the runner's own `leaked` report.
    #[serde(default)]
    pub threads_vary: bool,
    /// What the instance loads in edge mode: `"code"` (as written) or a template file.
    pub edge: String,
    /// The same for plain mode; `None`: no resident form for plain programs.
    #[serde(default)]
    pub plain: Option<String>,
}

/// A launcher the agent compiles at start-up with the language's compiler (C#).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launcher {
    pub source: String,
    /// Run as root on the compiled launcher, its path appended (ahead-of-time compile).
    #[serde(default)]
    pub aot: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wrap {
    /// The edge-contract template file.
    pub edge: String,
    /// The plain-mode template file; `None`: the code as written.
    #[serde(default)]
    pub plain: Option<String>,
}

/// The word that, in `[resident] edge`/`plain`, means "the code as written".
pub const AS_WRITTEN: &str = "code";

impl Recipe {
    /// Reads and checks `dir/language.toml`. The directory's name must be the recipe's.
    pub fn load(dir: &Path) -> Result<Recipe, RecipeError> {
        let path = dir.join(RECIPE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| RecipeError::Read {
            path: path.clone(),
            source,
        })?;
        let recipe: Recipe = toml::from_str(&text).map_err(|source| RecipeError::Parse {
            path: path.clone(),
            source,
        })?;
        let invalid = |message: String| RecipeError::Invalid {
            path: path.clone(),
            message,
        };
        if !Language::is_valid_name(recipe.name.name()) {
            return Err(invalid(format!(
                "name {:?}: use lowercase letters, digits and - only",
                recipe.name.name()
            )));
        }
        if dir.file_name().and_then(|n| n.to_str()) != Some(recipe.name.name()) {
            return Err(invalid(format!(
                "name {:?} is not the directory's name",
                recipe.name.name()
            )));
        }
        if recipe.version.is_empty() || recipe.run.argv.is_empty() {
            return Err(invalid("version and run.argv must not be empty".into()));
        }
        if recipe.compile.as_ref().is_some_and(|c| c.argv.is_empty()) {
            return Err(invalid("compile.argv must not be empty".into()));
        }
        if recipe.file.contains('/') || recipe.file.starts_with('.') || recipe.file.is_empty() {
            return Err(invalid(format!(
                "file {:?} must be a plain file name",
                recipe.file
            )));
        }
        Ok(recipe)
    }

    /// The image recipe this language runs in.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(self.name.name())
    }

    /// Whether a program must be compiled before it runs (and so is worth caching).
    pub fn is_compiled(&self) -> bool {
        self.compile.is_some()
    }

    /// The translator's version, part of the artifact key ("" without one).
    pub fn translator_version(&self) -> &'static str {
        self.compile
            .as_ref()
            .and_then(|c| c.translate)
            .map_or("", Translator::version)
    }

    /// The extension (with its dot) a cached artifact keeps, or "".
    pub fn artifact_extension(&self) -> &str {
        let Some(c) = &self.compile else { return "" };
        match c.artifact.rfind('.') {
            Some(i) if i > 0 => &c.artifact[i..],
            _ => "",
        }
    }

    /// The language's directory as the container sees it (`{dir}`).
    pub fn container_dir(&self) -> String {
        format!("{CONTAINER_DIR}/{}", self.name.name())
    }
}

/// A language's templates, read once by the gateway.
#[derive(Debug, Clone)]
pub struct Templates {
    pub edge: String,
    pub plain: Option<String>,
    /// The resident instance's program per mode; `None` inside: as written. The outer
    /// `None`: no resident form for that mode.
    pub resident_edge: Option<Option<String>>,
    pub resident_plain: Option<Option<String>>,
}

impl Templates {
    fn load(dir: &Path, recipe: &Recipe) -> Result<Templates, RecipeError> {
        let read = |name: &str| -> Result<String, RecipeError> {
            let path = dir.join(name);
            if name.contains('/') || name.starts_with('.') {
                return Err(RecipeError::Invalid {
                    path,
                    message: "a template is a file of the recipe's directory".into(),
                });
            }
            let text = std::fs::read_to_string(&path).map_err(|source| RecipeError::Read {
                path: path.clone(),
                source,
            })?;
            // The marker is a whole line, exactly once: the user's code replaces it verbatim.
            let whole_lines = text.lines().filter(|l| *l == CODE_MARKER).count();
            if whole_lines != 1 || text.matches(CODE_MARKER).count() != 1 {
                return Err(RecipeError::Invalid {
                    path,
                    message: format!("a template has the line {CODE_MARKER} exactly once"),
                });
            }
            Ok(text)
        };
        let form = |f: &str| -> Result<Option<String>, RecipeError> {
            if f == AS_WRITTEN {
                Ok(None)
            } else {
                read(f).map(Some)
            }
        };
        let resident = recipe.resident.as_ref();
        Ok(Templates {
            edge: read(&recipe.wrap.edge)?,
            plain: recipe.wrap.plain.as_deref().map(read).transpose()?,
            resident_edge: resident.map(|r| form(&r.edge)).transpose()?,
            resident_plain: resident
                .and_then(|r| r.plain.as_deref())
                .map(form)
                .transpose()?,
        })
    }
}

fn fill(template: &str, code: &str) -> String {
    template.replacen(CODE_MARKER, code, 1)
}

/// A language as the gateway knows it: its recipe and its templates.
#[derive(Debug)]
pub struct LanguageDef {
    pub recipe: Recipe,
    pub templates: Templates,
}

impl LanguageDef {
    pub fn language(&self) -> &Language {
        &self.recipe.name
    }

    /// The program a call runs: the edge template around the code, or for a plain
    /// program its template (if any) or the code as written.
    pub fn wrap(&self, code: &str, plain: bool) -> String {
        match (plain, &self.templates.plain) {
            (false, _) => fill(&self.templates.edge, code),
            (true, Some(t)) => fill(t, code),
            (true, None) => code.to_string(),
        }
    }

    /// The program a resident instance loads; `None`: the language has no resident form
    /// for this mode.
    pub fn wrap_instance(&self, code: &str, plain: bool) -> Option<String> {
        let form = if plain {
            self.templates.resident_plain.as_ref()
        } else {
            self.templates.resident_edge.as_ref()
        }?;
        Some(match form {
            Some(t) => fill(t, code),
            None => code.to_string(),
        })
    }

    pub fn has_resident_form(&self, plain: bool) -> bool {
        if plain {
            self.templates.resident_plain.is_some()
        } else {
            self.templates.resident_edge.is_some()
        }
    }
}

/// Every language of a languages directory, in name order, with lookup by name or alias.
#[derive(Debug, Default)]
pub struct Registry {
    dir: PathBuf,
    languages: BTreeMap<Language, Arc<LanguageDef>>,
    /// Lowercase name or alias → canonical language.
    names: BTreeMap<String, Language>,
}

impl Registry {
    /// Reads every `dir/*/language.toml` and its templates. A subdirectory without a
    /// recipe (an image-only one) is skipped; a broken recipe, or a name or alias claimed
    /// twice, is an error naming the file.
    pub fn load(dir: &Path) -> Result<Registry, RecipeError> {
        let read_dir = std::fs::read_dir(dir).map_err(|source| RecipeError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut registry = Registry {
            dir: dir.to_path_buf(),
            ..Registry::default()
        };
        let mut dirs: Vec<PathBuf> = read_dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join(RECIPE_FILE).is_file())
            .collect();
        dirs.sort();
        for d in dirs {
            let recipe = Recipe::load(&d)?;
            let templates = Templates::load(&d, &recipe)?;
            let lang = recipe.name.clone();
            for n in std::iter::once(lang.name().to_string())
                .chain(recipe.aliases.iter().map(|a| a.trim().to_ascii_lowercase()))
            {
                if let Some(other) = registry.names.insert(n.clone(), lang.clone()) {
                    return Err(RecipeError::Invalid {
                        path: d.join(RECIPE_FILE),
                        message: format!("the name {n:?} is also {other}'s"),
                    });
                }
            }
            registry
                .languages
                .insert(lang, Arc::new(LanguageDef { recipe, templates }));
        }
        Ok(registry)
    }

    /// Keeps only the languages `enabled` names (by name or alias); an empty list keeps
    /// all. A name no recipe has is an error listing those that exist.
    pub fn only(mut self, enabled: &[String]) -> Result<Registry, UnknownLanguage> {
        if enabled.is_empty() {
            return Ok(self);
        }
        let mut keep = std::collections::BTreeSet::new();
        for name in enabled {
            match self.names.get(&name.trim().to_ascii_lowercase()) {
                Some(lang) => {
                    keep.insert(lang.clone());
                }
                None => {
                    return Err(UnknownLanguage {
                        name: name.clone(),
                        known: self
                            .languages
                            .keys()
                            .map(|l| l.name().to_string())
                            .collect(),
                    })
                }
            }
        }
        self.languages.retain(|l, _| keep.contains(l));
        self.names.retain(|_, l| keep.contains(l));
        Ok(self)
    }

    /// The directory the recipes were read from (mounted into the containers).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A canonical name or alias, ignoring ASCII case and surrounding spaces.
    pub fn resolve(&self, name: &str) -> Option<&Arc<LanguageDef>> {
        let lang = self.names.get(&name.trim().to_ascii_lowercase())?;
        self.languages.get(lang)
    }

    pub fn get(&self, lang: &Language) -> Option<&Arc<LanguageDef>> {
        self.languages.get(lang)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<LanguageDef>> {
        self.languages.values()
    }

    pub fn languages(&self) -> impl Iterator<Item = &Language> {
        self.languages.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.languages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository() -> Registry {
        Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../languages")).unwrap()
    }

    #[test]
    fn the_repository_declares_twelve_languages_each_with_both_forms() {
        let r = repository();
        let names: Vec<&str> = r.languages().map(|l| l.name()).collect();
        assert_eq!(
            names,
            [
                "bash",
                "c",
                "cpp",
                "csharp",
                "go",
                "java",
                "javascript",
                "php",
                "python",
                "ruby",
                "rust",
                "typescript"
            ]
        );
        for def in r.iter() {
            let edge = def.wrap("CODE_HERE", false);
            assert_eq!(edge.matches("CODE_HERE").count(), 1, "{}", def.language());
            assert_eq!(
                def.wrap("CODE_HERE", true),
                "CODE_HERE",
                "{}",
                def.language()
            );
            // The version probe and run argv name something to start.
            assert!(!def.recipe.version.is_empty(), "{}", def.language());
        }
    }

    #[test]
    fn names_and_aliases_resolve_ignoring_case_and_only_keeps_what_is_enabled() {
        let r = repository();
        for (asked, is) in [
            ("py", "python"),
            ("TS", "typescript"),
            ("c++", "cpp"),
            ("sh", "bash"),
            (" Rust ", "rust"),
            ("cs", "csharp"),
        ] {
            assert_eq!(
                r.resolve(asked).map(|d| d.language().name()),
                Some(is),
                "{asked}"
            );
        }
        let only = r.only(&["py".into(), "go".into()]).unwrap();
        assert_eq!(
            only.languages().map(|l| l.name()).collect::<Vec<_>>(),
            ["go", "python"]
        );
        assert!(only.resolve("javascript").is_none());
        let e = repository().only(&["cobol".into()]).unwrap_err();
        assert!(
            e.to_string().contains("cobol") && e.to_string().contains("python"),
            "{e}"
        );
    }
}
