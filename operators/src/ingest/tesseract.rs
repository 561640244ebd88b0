//! Tesseract 5 (Apache-2.0) through its C API, loaded at run time from the system's
//! `libtesseract.so.5` (Debian: `tesseract-ocr`, with `tesseract-ocr-eng`, `tesseract-ocr-chi-sim`).
//!
//! Tesseract parallelises inside a page with OpenMP, which on small machines is slower than one
//! page per core: before the library (and with it libgomp) is loaded, `OMP_THREAD_LIMIT` is set
//! to 1 unless the user set it. zest runs one engine per thread instead.

use anyhow::{anyhow, bail, Result};
use std::ffi::{c_char, c_float, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

type Handle = *mut c_void;

struct Api {
    _lib: libloading::Library,
    version: unsafe extern "C" fn() -> *const c_char,
    create: unsafe extern "C" fn() -> Handle,
    delete: unsafe extern "C" fn(Handle),
    init3: unsafe extern "C" fn(Handle, *const c_char, *const c_char) -> c_int,
    set_image: unsafe extern "C" fn(Handle, *const u8, c_int, c_int, c_int, c_int),
    set_resolution: unsafe extern "C" fn(Handle, c_int),
    set_psm: unsafe extern "C" fn(Handle, c_int),
    set_variable: unsafe extern "C" fn(Handle, *const c_char, *const c_char) -> c_int,
    recognize: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    utf8: unsafe extern "C" fn(Handle) -> *mut c_char,
    delete_text: unsafe extern "C" fn(*const c_char),
    mean_conf: unsafe extern "C" fn(Handle) -> c_int,
    clear: unsafe extern "C" fn(Handle),
    detect_os: unsafe extern "C" fn(
        Handle,
        *mut c_int,
        *mut c_float,
        *mut *const c_char,
        *mut c_float,
    ) -> c_int,
}

// SAFETY: function pointers only; each `Engine` (one TessBaseAPI) is used by one thread at a time.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

static API: OnceLock<std::result::Result<Api, String>> = OnceLock::new();

unsafe fn sym<T: Copy>(lib: &libloading::Library, name: &str) -> Result<T> {
    let s: libloading::Symbol<T> = lib
        .get(name.as_bytes())
        .map_err(|e| anyhow!("libtesseract has no `{name}`: {e}"))?;
    Ok(*s)
}

fn load() -> std::result::Result<Api, String> {
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        // Set once, before libgomp is loaded (it reads the variable when it loads). Nothing
        // else in zest reads or writes the environment concurrently with the first OCR call.
        std::env::set_var("OMP_THREAD_LIMIT", "1");
    }
    let names = ["libtesseract.so.5", "libtesseract.so"];
    let mut errors = vec![];
    for name in names {
        // SAFETY: loading libtesseract runs its initialisers, which have no preconditions; the
        // symbols are declared with the signatures of tesseract/capi.h.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => {
                let bind = |lib: libloading::Library| -> Result<Api> {
                    unsafe {
                        Ok(Api {
                            version: sym(&lib, "TessVersion")?,
                            create: sym(&lib, "TessBaseAPICreate")?,
                            delete: sym(&lib, "TessBaseAPIDelete")?,
                            init3: sym(&lib, "TessBaseAPIInit3")?,
                            set_image: sym(&lib, "TessBaseAPISetImage")?,
                            set_resolution: sym(&lib, "TessBaseAPISetSourceResolution")?,
                            set_psm: sym(&lib, "TessBaseAPISetPageSegMode")?,
                            set_variable: sym(&lib, "TessBaseAPISetVariable")?,
                            recognize: sym(&lib, "TessBaseAPIRecognize")?,
                            utf8: sym(&lib, "TessBaseAPIGetUTF8Text")?,
                            delete_text: sym(&lib, "TessDeleteText")?,
                            mean_conf: sym(&lib, "TessBaseAPIMeanTextConf")?,
                            clear: sym(&lib, "TessBaseAPIClear")?,
                            detect_os: sym(&lib, "TessBaseAPIDetectOrientationScript")?,
                            _lib: lib,
                        })
                    }
                };
                return bind(lib).map_err(|e| e.to_string());
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    Err(format!(
        "Tesseract 5 not found ({}); on Debian: apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim",
        errors.join("; ")
    ))
}

fn api() -> Result<&'static Api> {
    API.get_or_init(load).as_ref().map_err(|e| anyhow!("{e}"))
}

/// Loads libtesseract (if not yet loaded) and returns its version.
pub fn version() -> Result<String> {
    let a = api()?;
    // SAFETY: TessVersion returns a static NUL-terminated string.
    Ok(unsafe { CStr::from_ptr((a.version)()) }
        .to_string_lossy()
        .into_owned())
}

/// What OCR read from one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Ocr {
    /// The text, lines separated by `\n`, paragraphs by blank lines.
    pub text: String,
    /// Tesseract's mean word confidence, 0–100.
    pub confidence: f32,
}

/// One Tesseract engine with its languages loaded; use one per thread.
pub struct Engine {
    api: &'static Api,
    handle: Handle,
    /// The languages, as Tesseract names them (`eng+chi_sim`).
    pub languages: String,
}

// SAFETY: an engine is owned by one thread at a time (not Sync).
unsafe impl Send for Engine {}

impl Engine {
    /// An engine for `languages` (Tesseract names, e.g. `["eng", "chi_sim"]`), with the
    /// traineddata found in `datapath` or Tesseract's default location.
    pub fn new(languages: &[String], datapath: Option<&str>) -> Result<Engine> {
        let api = api()?;
        let langs = languages.join("+");
        let c_langs = CString::new(langs.clone())?;
        let c_path = datapath.map(CString::new).transpose()?;
        // SAFETY: a fresh handle, initialised once; deleted on failure.
        unsafe {
            let handle = (api.create)();
            if handle.is_null() {
                bail!("Tesseract could not create an engine");
            }
            let rc = (api.init3)(
                handle,
                c_path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                c_langs.as_ptr(),
            );
            if rc != 0 {
                (api.delete)(handle);
                bail!(
                    "Tesseract cannot load the languages `{langs}`: is their traineddata installed (Debian: tesseract-ocr-{})?",
                    languages
                        .iter()
                        .map(|l| l.replace('_', "-"))
                        .collect::<Vec<_>>()
                        .join(", tesseract-ocr-")
                );
            }
            // Fully automatic page segmentation, without orientation detection (3).
            (api.set_psm)(handle, 3);
            let (k, v) = (c"debug_file", c"/dev/null");
            (api.set_variable)(handle, k.as_ptr(), v.as_ptr());
            Ok(Engine {
                api,
                handle,
                languages: langs,
            })
        }
    }

    /// Reads greyscale `pixels` (`width` × `height`, one byte each, rows packed) scanned at `dpi`.
    pub fn recognize(
        &mut self,
        pixels: &[u8],
        width: usize,
        height: usize,
        dpi: u32,
    ) -> Result<Ocr> {
        if pixels.len() != width * height {
            bail!("image of {} bytes is not {width}x{height}", pixels.len());
        }
        // SAFETY: `pixels` outlives the call; the image is cleared before return.
        unsafe {
            (self.api.set_image)(
                self.handle,
                pixels.as_ptr(),
                width as c_int,
                height as c_int,
                1,
                width as c_int,
            );
            (self.api.set_resolution)(self.handle, dpi as c_int);
            if (self.api.recognize)(self.handle, std::ptr::null_mut()) != 0 {
                (self.api.clear)(self.handle);
                bail!("Tesseract failed to recognise the page");
            }
            let p = (self.api.utf8)(self.handle);
            let text = if p.is_null() {
                String::new()
            } else {
                let s = CStr::from_ptr(p).to_string_lossy().into_owned();
                (self.api.delete_text)(p);
                s
            };
            let confidence = (self.api.mean_conf)(self.handle).max(0) as f32;
            (self.api.clear)(self.handle);
            Ok(Ocr { text, confidence })
        }
    }

    /// The script of a page (`Latin`, `Han`, …) by Tesseract's orientation and script
    /// detection, which needs `osd` among the engine's languages; None when it cannot tell.
    pub fn script(
        &mut self,
        pixels: &[u8],
        width: usize,
        height: usize,
        dpi: u32,
    ) -> Option<String> {
        if pixels.len() != width * height {
            return None;
        }
        // SAFETY: as in `recognize`; the script name is a static string owned by Tesseract.
        unsafe {
            (self.api.set_image)(
                self.handle,
                pixels.as_ptr(),
                width as c_int,
                height as c_int,
                1,
                width as c_int,
            );
            (self.api.set_resolution)(self.handle, dpi as c_int);
            let (mut deg, mut oconf, mut name, mut sconf) = (0, 0.0f32, std::ptr::null(), 0.0f32);
            let ok = (self.api.detect_os)(self.handle, &mut deg, &mut oconf, &mut name, &mut sconf);
            (self.api.clear)(self.handle);
            (ok != 0 && !name.is_null())
                .then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the handle is live and deleted once.
        unsafe { (self.api.delete)(self.handle) }
    }
}
