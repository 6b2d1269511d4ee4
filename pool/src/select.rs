//! Which pool an invocation runs on: the language's own, or the smallest built variant
//! that has every package it asks for (names compared as their registry compares them:
//! PEP 503 for PyPI). Holds the registry of every pool of the gateway, and looks again,
//! at most every [`VARIANT_RECHECK`], for variants whose image was built after startup.

use codebeaker_proto::Language;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::PoolSettings;
use crate::docker::Engine;
use crate::error::{PoolError, UnknownPackages};
use crate::language_pool::{Factory, LanguagePool};

/// How often, at most, the images of unbuilt variants are looked for again on a miss.
pub(crate) const VARIANT_RECHECK: Duration = Duration::from_secs(2);

/// A configured variant whose image is missing.
#[derive(Debug, Clone)]
pub(crate) struct Unbuilt {
    pub(crate) name: String,
    pub(crate) language: Language,
    pub(crate) image: String,
}

/// Every pool of one gateway: the languages' and the built variants'.
pub(crate) struct Registry {
    languages: BTreeMap<Language, Arc<LanguagePool>>,
    /// The variants whose image is built, by name. Grows when a variant built while the
    /// gateway runs is found ([`Registry::refresh`]); never shrinks.
    variants: RwLock<BTreeMap<String, Arc<LanguagePool>>>,
    unbuilt: Mutex<Vec<Unbuilt>>,
    /// When the unbuilt variants' images were last looked for.
    checked: Mutex<Option<Instant>>,
}

impl Registry {
    /// Builds the pools of every enabled language, and of every enabled variant whose
    /// image is built (and whose language this gateway runs).
    pub(crate) async fn build(factory: &Factory, engine: &Engine) -> Registry {
        let settings: &PoolSettings = &factory.settings;
        let languages: BTreeMap<_, _> = factory
            .recipes
            .iter()
            .filter_map(|def| {
                let language = def.language().clone();
                let lang = settings.for_language(&def.recipe);
                lang.enabled.then(|| {
                    let lp = factory.build(def.clone(), language.name(), &lang, None, 0);
                    (language, lp)
                })
            })
            .collect();
        // Each language's image is looked for once now: a missing one is logged by name
        // and not warmed, and its calls get a 503 naming the command that builds it.
        for lp in languages.values() {
            lp.check_image().await;
        }
        let (mut variants, mut unbuilt) = (BTreeMap::new(), Vec::new());
        for (name, lang) in settings.variants.iter().filter(|(_, s)| s.enabled) {
            match engine.variant_image(&lang.image).await {
                // A variant of a language this gateway does not run is not offered.
                Some(v) if !languages.contains_key(&v.language) => continue,
                Some(v) => {
                    let Some(def) = factory.recipes.get(&v.language) else {
                        continue;
                    };
                    tracing::info!(variant = %name, image = %lang.image, packages = ?v.packages, "package variant available");
                    let lp = factory.build(def.clone(), name, lang, Some(v.packages), v.size);
                    variants.insert(name.clone(), lp);
                }
                None => {
                    // The name says the language when the image cannot (validated).
                    if let Some(language) = crate::config::variant_language(name) {
                        unbuilt.push(Unbuilt {
                            name: name.clone(),
                            language,
                            image: lang.image.clone(),
                        });
                    }
                }
            }
        }
        Registry {
            languages,
            variants: RwLock::new(variants),
            unbuilt: Mutex::new(unbuilt),
            checked: Mutex::new(None),
        }
    }

    /// The enabled languages.
    pub(crate) fn languages(&self) -> impl Iterator<Item = &Language> + '_ {
        self.languages.keys()
    }

    /// Every pool: the languages', then the variants'.
    pub(crate) fn all(&self) -> Vec<Arc<LanguagePool>> {
        let variants = self.variants.read().unwrap_or_else(|p| p.into_inner());
        self.languages
            .values()
            .chain(variants.values())
            .cloned()
            .collect()
    }

    /// Configured variants whose image is not built.
    pub(crate) fn unbuilt(&self) -> Vec<Unbuilt> {
        self.unbuilt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Looks again for the images of configured variants that were not built, at most
    /// every [`VARIANT_RECHECK`] (so misses cannot turn into a stream of engine calls).
    /// Returns the pools of the variants found (for the caller to start warming).
    pub(crate) async fn refresh(
        &self,
        factory: &Factory,
        engine: &Engine,
    ) -> Vec<Arc<LanguagePool>> {
        let unbuilt = {
            let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            if checked.is_some_and(|t| t.elapsed() < VARIANT_RECHECK) {
                return Vec::new();
            }
            *checked = Some(Instant::now());
            self.unbuilt()
        };
        let mut found = Vec::new();
        for Unbuilt {
            name,
            language,
            image,
        } in unbuilt
        {
            let Some(v) = engine.variant_image(&image).await else {
                continue;
            };
            let Some(lang) = factory.settings.variants.get(&name) else {
                continue;
            };
            if v.language != language || !self.languages.contains_key(&language) {
                continue;
            }
            let Some(def) = factory.recipes.get(&language) else {
                continue;
            };
            tracing::info!(variant = %name, %image, packages = ?v.packages, "package variant built while running: now available");
            let lp = factory.build(def.clone(), &name, lang, Some(v.packages), v.size);
            self.variants
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), lp.clone());
            self.unbuilt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|u| u.name != name);
            found.push(lp);
        }
        found
    }

    /// The pool an invocation of `language` needing `packages` runs on: the language's
    /// own without packages, else the smallest built variant that has them all.
    pub(crate) fn select(
        &self,
        language: &Language,
        packages: &[String],
    ) -> Result<Arc<LanguagePool>, PoolError> {
        let base = self
            .languages
            .get(language)
            .ok_or_else(|| PoolError::Disabled(language.clone()))?;
        if packages.is_empty() {
            return Ok(base.clone());
        }
        let variants = self.variants.read().unwrap_or_else(|p| p.into_inner());
        let wanted: Vec<String> = packages.iter().map(|p| package_name(language, p)).collect();
        let of_language = || variants.values().filter(|v| v.language() == language);
        let has = |lp: &LanguagePool, p: &String| lp.packages().is_some_and(|k| k.contains_key(p));
        if let Some(best) = of_language()
            .filter(|v| wanted.iter().all(|p| has(v, p)))
            .min_by_key(|v| (v.image_size(), v.name().to_string()))
        {
            return Ok(best.clone());
        }
        let mut missing: Vec<String> = wanted
            .iter()
            .filter(|p| !of_language().any(|v| has(v, p)))
            .cloned()
            .collect();
        if missing.is_empty() {
            // Each exists somewhere, but no one variant has them all.
            missing = wanted;
        }
        missing.sort();
        missing.dedup();
        Err(PoolError::UnknownPackages(Box::new(UnknownPackages {
            language: language.clone(),
            missing,
            available: of_language()
                .map(|v| {
                    (
                        v.name().to_string(),
                        v.packages().cloned().unwrap_or_default(),
                    )
                })
                .collect(),
            unbuilt: self
                .unbuilt()
                .into_iter()
                .filter(|u| &u.language == language)
                .map(|u| u.name)
                .collect(),
        })))
    }
}

/// A package name as its registry compares them: PyPI's case- and separator-insensitive
/// (PEP 503), npm's as given (npm names are lowercase).
pub(crate) fn package_name(language: &Language, name: &str) -> String {
    let name = name.trim();
    match language.name() {
        "python" => {
            let mut out = String::with_capacity(name.len());
            for c in name.chars() {
                let c = if matches!(c, '_' | '.') {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                };
                if !(c == '-' && out.ends_with('-')) {
                    out.push(c);
                }
            }
            out
        }
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_compare_as_their_registry_does() {
        let py = |n| package_name(&Language::Python, n);
        assert_eq!(py("Pillow"), "pillow");
        assert_eq!(py("python_dateutil"), "python-dateutil");
        assert_eq!(py("zope.interface"), "zope-interface");
        assert_eq!(py(" NumPy "), "numpy");
        assert_eq!(py("a__b"), "a-b");
        assert_eq!(package_name(&Language::JavaScript, "lodash"), "lodash");
        assert_eq!(
            package_name(&Language::JavaScript, "@scope/pkg"),
            "@scope/pkg"
        );
    }
}
