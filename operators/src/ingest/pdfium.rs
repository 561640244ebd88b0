//! PDFium (BSD-3-Clause/Apache-2.0), loaded at run time: the text layer of PDF pages with each
//! character's box, page objects, and page rendering for OCR.
//!
//! PDFium is not thread-safe, so every call goes through one process-wide lock ([`Pdfium::lock`]).
//! The library is found at `$ZEST_PDFIUM_LIB`, next to the running executable, or in
//! `$HOME/.cache/zest-tools/pdfium/` (where `infra/scripts/install-pdfium.sh` puts it).

use anyhow::{anyhow, bail, Result};
use std::ffi::{c_char, c_double, c_float, c_int, c_uint, c_ulong, c_void};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

type Doc = *mut c_void;
type Page = *mut c_void;
type TextPage = *mut c_void;
type Bitmap = *mut c_void;
type PageObj = *mut c_void;

/// The library's entry points zest uses.
struct Api {
    _lib: libloading::Library,
    init: unsafe extern "C" fn(),
    load_mem: unsafe extern "C" fn(*const c_void, usize, *const c_char) -> Doc,
    last_error: unsafe extern "C" fn() -> c_ulong,
    close_doc: unsafe extern "C" fn(Doc),
    page_count: unsafe extern "C" fn(Doc) -> c_int,
    load_page: unsafe extern "C" fn(Doc, c_int) -> Page,
    close_page: unsafe extern "C" fn(Page),
    page_width: unsafe extern "C" fn(Page) -> c_float,
    page_height: unsafe extern "C" fn(Page) -> c_float,
    text_load: unsafe extern "C" fn(Page) -> TextPage,
    text_close: unsafe extern "C" fn(TextPage),
    text_count: unsafe extern "C" fn(TextPage) -> c_int,
    text_unicode: unsafe extern "C" fn(TextPage, c_int) -> c_uint,
    text_box: unsafe extern "C" fn(
        TextPage,
        c_int,
        *mut c_double,
        *mut c_double,
        *mut c_double,
        *mut c_double,
    ) -> c_int,
    text_font_size: unsafe extern "C" fn(TextPage, c_int) -> c_double,
    text_generated: unsafe extern "C" fn(TextPage, c_int) -> c_int,
    text_map_error: unsafe extern "C" fn(TextPage, c_int) -> c_int,
    obj_count: unsafe extern "C" fn(Page) -> c_int,
    obj_get: unsafe extern "C" fn(Page, c_int) -> PageObj,
    obj_type: unsafe extern "C" fn(PageObj) -> c_int,
    bitmap_create: unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, c_int) -> Bitmap,
    bitmap_fill: unsafe extern "C" fn(Bitmap, c_int, c_int, c_int, c_int, c_ulong) -> c_int,
    bitmap_destroy: unsafe extern "C" fn(Bitmap),
    render: unsafe extern "C" fn(Bitmap, Page, c_int, c_int, c_int, c_int, c_int, c_int),
}

// SAFETY: the function pointers are plain data; every use is serialised by `Pdfium`'s lock.
unsafe impl Send for Api {}

/// The loaded library behind its lock.
pub struct Pdfium {
    api: Mutex<Api>,
    /// Where the library was loaded from.
    pub path: PathBuf,
}

static PDFIUM: OnceLock<std::result::Result<Pdfium, String>> = OnceLock::new();

/// Where the library is looked for, in order.
pub fn candidates() -> Vec<PathBuf> {
    let mut c = vec![];
    if let Some(p) = std::env::var_os("ZEST_PDFIUM_LIB") {
        c.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            c.push(dir.join("libpdfium.so"));
        }
        if let Ok(real) = std::fs::canonicalize(&exe) {
            if let Some(dir) = real.parent() {
                c.push(dir.join("libpdfium.so"));
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        c.push(PathBuf::from(home).join(".cache/zest-tools/pdfium/libpdfium.so"));
    }
    c
}

unsafe fn sym<T: Copy>(lib: &libloading::Library, name: &str) -> Result<T> {
    let s: libloading::Symbol<T> = lib
        .get(name.as_bytes())
        .map_err(|e| anyhow!("libpdfium has no `{name}`: {e}"))?;
    Ok(*s)
}

fn load() -> std::result::Result<Pdfium, String> {
    let tried = candidates();
    let Some(path) = tried.iter().find(|p| p.is_file()).cloned() else {
        return Err(format!(
            "PDFium not found (looked at {}); run `bash infra/scripts/install-pdfium.sh` or set ZEST_PDFIUM_LIB",
            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
    };
    load_from(path)
}

fn load_from(path: PathBuf) -> std::result::Result<Pdfium, String> {
    // SAFETY: loading PDFium runs no initialisers with preconditions; the symbols are
    // declared with the signatures of PDFium's public headers (fpdfview.h, fpdf_text.h,
    // fpdf_edit.h).
    unsafe {
        let lib = libloading::Library::new(&path)
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        let bind = |lib: libloading::Library| -> Result<Api> {
            Ok(Api {
                init: sym(&lib, "FPDF_InitLibrary")?,
                load_mem: sym(&lib, "FPDF_LoadMemDocument64")?,
                last_error: sym(&lib, "FPDF_GetLastError")?,
                close_doc: sym(&lib, "FPDF_CloseDocument")?,
                page_count: sym(&lib, "FPDF_GetPageCount")?,
                load_page: sym(&lib, "FPDF_LoadPage")?,
                close_page: sym(&lib, "FPDF_ClosePage")?,
                page_width: sym(&lib, "FPDF_GetPageWidthF")?,
                page_height: sym(&lib, "FPDF_GetPageHeightF")?,
                text_load: sym(&lib, "FPDFText_LoadPage")?,
                text_close: sym(&lib, "FPDFText_ClosePage")?,
                text_count: sym(&lib, "FPDFText_CountChars")?,
                text_unicode: sym(&lib, "FPDFText_GetUnicode")?,
                text_box: sym(&lib, "FPDFText_GetCharBox")?,
                text_font_size: sym(&lib, "FPDFText_GetFontSize")?,
                text_generated: sym(&lib, "FPDFText_IsGenerated")?,
                text_map_error: sym(&lib, "FPDFText_HasUnicodeMapError")?,
                obj_count: sym(&lib, "FPDFPage_CountObjects")?,
                obj_get: sym(&lib, "FPDFPage_GetObject")?,
                obj_type: sym(&lib, "FPDFPageObj_GetType")?,
                bitmap_create: sym(&lib, "FPDFBitmap_CreateEx")?,
                bitmap_fill: sym(&lib, "FPDFBitmap_FillRect")?,
                bitmap_destroy: sym(&lib, "FPDFBitmap_Destroy")?,
                render: sym(&lib, "FPDF_RenderPageBitmap")?,
                _lib: lib,
            })
        };
        let api = bind(lib).map_err(|e| format!("{}: {e}", path.display()))?;
        (api.init)();
        Ok(Pdfium {
            api: Mutex::new(api),
            path,
        })
    }
}

static EXTRA: Mutex<Vec<&'static Pdfium>> = Mutex::new(Vec::new());

impl Pdfium {
    /// The process's PDFium, loaded on first use.
    pub fn get() -> Result<&'static Pdfium> {
        PDFIUM
            .get_or_init(load)
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }

    /// Up to `n` independent instances, so that `n` threads can read PDFs at once: PDFium
    /// keeps its state in globals, so each extra instance is a private copy of the library,
    /// loaded from a temporary file (removed once loaded) with its own globals and lock.
    /// Instances live as long as the process and are reused by later calls. When a copy cannot
    /// be made, fewer instances are returned (at least one).
    pub fn instances(n: usize) -> Result<Vec<&'static Pdfium>> {
        let first = Pdfium::get()?;
        let mut extra = EXTRA.lock().unwrap_or_else(|p| p.into_inner());
        while extra.len() + 1 < n {
            let tmp = std::env::temp_dir().join(format!(
                "zest-pdfium-{}-{}.so",
                std::process::id(),
                extra.len() + 1
            ));
            let loaded = std::fs::copy(&first.path, &tmp)
                .map_err(|e| e.to_string())
                .and_then(|_| load_from(tmp.clone()));
            let _ = std::fs::remove_file(&tmp);
            match loaded {
                Ok(p) => extra.push(Box::leak(Box::new(p))),
                Err(e) => {
                    eprintln!("PDFium: using {} instance(s): {e}", extra.len() + 1);
                    break;
                }
            }
        }
        let mut out = vec![first];
        out.extend(extra.iter().take(n.saturating_sub(1)).copied());
        Ok(out)
    }

    /// Takes the lock: every PDFium call happens through the returned guard.
    pub fn lock(&self) -> Session<'_> {
        Session {
            api: self.api.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// Exclusive use of PDFium.
pub struct Session<'a> {
    api: MutexGuard<'a, Api>,
}

/// Why a document could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The file is not a PDF or is damaged beyond repair.
    Format(String),
    /// The document needs a password.
    Password,
    /// An unsupported security handler.
    Security,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Format(s) => write!(f, "{s}"),
            OpenError::Password => write!(f, "encrypted: the document needs a password"),
            OpenError::Security => write!(f, "encrypted with an unsupported security handler"),
        }
    }
}

/// An open document; closed on drop. Only usable through the session that opened it.
pub struct Document<'s, 'a> {
    s: &'s Session<'a>,
    doc: Doc,
    // PDFium reads the buffer lazily: it must outlive the document.
    _data: &'s [u8],
}

pub use zest_kernels::page_text::Char;

/// A page's text layer and what else is on it.
#[derive(Debug, Clone, Default)]
pub struct PageText {
    /// Width and height in points.
    pub size: (f32, f32),
    /// The characters in content order.
    pub chars: Vec<Char>,
    /// Image objects on the page.
    pub images: usize,
    /// Text objects on the page.
    pub text_objects: usize,
}

/// A greyscale rendering, one byte per pixel.
pub struct Render {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Rows of `width` bytes.
    pub pixels: Vec<u8>,
}

impl<'a> Session<'a> {
    /// Opens a document from memory, without a password.
    pub fn open<'s>(&'s self, data: &'s [u8]) -> std::result::Result<Document<'s, 'a>, OpenError> {
        // SAFETY: `data` outlives the document (tied by lifetime); the lock is held.
        let doc =
            unsafe { (self.api.load_mem)(data.as_ptr().cast(), data.len(), std::ptr::null()) };
        if doc.is_null() {
            // SAFETY: plain call under the lock.
            let code = unsafe { (self.api.last_error)() };
            return Err(match code {
                4 => OpenError::Password,
                5 => OpenError::Security,
                2 => OpenError::Format("the file cannot be read".into()),
                3 => OpenError::Format("not a PDF or damaged beyond repair".into()),
                c => OpenError::Format(format!("PDFium cannot open it (error {c})")),
            });
        }
        Ok(Document {
            s: self,
            doc,
            _data: data,
        })
    }
}

impl Drop for Document<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: `doc` is open and closed once.
        unsafe { (self.s.api.close_doc)(self.doc) }
    }
}

struct PageHandle<'d> {
    api: &'d Api,
    page: Page,
}

impl Drop for PageHandle<'_> {
    fn drop(&mut self) {
        // SAFETY: the page is open and closed once.
        unsafe { (self.api.close_page)(self.page) }
    }
}

impl Document<'_, '_> {
    /// The number of pages.
    pub fn pages(&self) -> usize {
        // SAFETY: open document, lock held.
        unsafe { (self.s.api.page_count)(self.doc).max(0) as usize }
    }

    fn page(&self, index: usize) -> Result<PageHandle<'_>> {
        // SAFETY: open document, lock held; a null page is reported.
        let page = unsafe { (self.s.api.load_page)(self.doc, index as c_int) };
        if page.is_null() {
            bail!("page {} cannot be loaded", index + 1);
        }
        Ok(PageHandle {
            api: &self.s.api,
            page,
        })
    }

    /// The text layer of page `index` (0-based), with each character's box.
    pub fn text(&self, index: usize) -> Result<PageText> {
        let api = &*self.s.api;
        let p = self.page(index)?;
        // SAFETY: `p.page` is open; every handle made here is closed before return.
        unsafe {
            let size = ((api.page_width)(p.page), (api.page_height)(p.page));
            let (mut images, mut text_objects) = (0, 0);
            for i in 0..(api.obj_count)(p.page) {
                match (api.obj_type)((api.obj_get)(p.page, i)) {
                    1 => text_objects += 1,
                    3 => images += 1,
                    _ => {}
                }
            }
            let tp = (api.text_load)(p.page);
            if tp.is_null() {
                bail!("page {}: the text layer cannot be read", index + 1);
            }
            let n = (api.text_count)(tp).max(0);
            let mut chars = Vec::with_capacity(n as usize);
            for i in 0..n {
                let u = (api.text_unicode)(tp, i);
                let c = char::from_u32(u).unwrap_or('\u{FFFD}');
                let (mut l, mut r, mut b, mut t) = (0.0, 0.0, 0.0, 0.0);
                let has_box = (api.text_box)(tp, i, &mut l, &mut r, &mut b, &mut t) != 0;
                chars.push(Char {
                    c,
                    bbox: if has_box {
                        [l as f32, r as f32, b as f32, t as f32]
                    } else {
                        [0.0; 4]
                    },
                    size: (api.text_font_size)(tp, i) as f32,
                    generated: (api.text_generated)(tp, i) == 1,
                    map_error: (api.text_map_error)(tp, i) == 1,
                });
            }
            (api.text_close)(tp);
            Ok(PageText {
                size,
                chars,
                images,
                text_objects,
            })
        }
    }

    /// Renders page `index` in grey at `dpi`, on white, refusing pages over `max_pixels`.
    pub fn render(&self, index: usize, dpi: u32, max_pixels: usize) -> Result<Render> {
        let api = &*self.s.api;
        let p = self.page(index)?;
        // SAFETY: `p.page` is open; the bitmap wraps `pixels`, which outlives it, and is
        // destroyed before return.
        unsafe {
            let (w_pt, h_pt) = ((api.page_width)(p.page), (api.page_height)(p.page));
            let scale = dpi as f32 / 72.0;
            let width = (w_pt * scale).round().max(1.0) as usize;
            let height = (h_pt * scale).round().max(1.0) as usize;
            if width * height > max_pixels {
                bail!(
                    "page {} at {dpi} dpi would be {width}x{height} pixels, over the limit of {max_pixels}",
                    index + 1
                );
            }
            let stride = width.div_ceil(4) * 4;
            let mut pixels = vec![0xFFu8; stride * height];
            // Format 1: one byte of grey per pixel.
            let bmp = (api.bitmap_create)(
                width as c_int,
                height as c_int,
                1,
                pixels.as_mut_ptr().cast(),
                stride as c_int,
            );
            if bmp.is_null() {
                bail!("page {}: cannot make a {width}x{height} bitmap", index + 1);
            }
            (api.bitmap_fill)(bmp, 0, 0, width as c_int, height as c_int, 0xFFFF_FFFF);
            // Flags: annotations (0x01) and print quality (0x800).
            (api.render)(
                bmp,
                p.page,
                0,
                0,
                width as c_int,
                height as c_int,
                0,
                0x01 | 0x800,
            );
            (api.bitmap_destroy)(bmp);
            if stride != width {
                let mut packed = Vec::with_capacity(width * height);
                for row in pixels.chunks(stride) {
                    packed.extend_from_slice(&row[..width]);
                }
                pixels = packed;
            }
            Ok(Render {
                width,
                height,
                pixels,
            })
        }
    }
}
