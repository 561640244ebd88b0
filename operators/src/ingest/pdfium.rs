//! PDFium (BSD-3-Clause/Apache-2.0), loaded at run time: the text layer of PDF pages with each
//! character's box, page objects, and page images for OCR: a scanned page's own image at its
//! own resolution, or a rendering of the page.
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
    page_rotation: unsafe extern "C" fn(Page) -> c_int,
    page_box: unsafe extern "C" fn(Page, *mut RectF) -> c_int,
    obj_bounds: unsafe extern "C" fn(
        PageObj,
        *mut c_float,
        *mut c_float,
        *mut c_float,
        *mut c_float,
    ) -> c_int,
    obj_matrix: unsafe extern "C" fn(PageObj, *mut Matrix) -> c_int,
    text_render_mode: unsafe extern "C" fn(PageObj) -> c_int,
    image_pixel_size: unsafe extern "C" fn(PageObj, *mut c_uint, *mut c_uint) -> c_int,
    image_metadata: unsafe extern "C" fn(PageObj, Page, *mut ImageMetadata) -> c_int,
    image_bitmap: unsafe extern "C" fn(PageObj) -> Bitmap,
    bitmap_format: unsafe extern "C" fn(Bitmap) -> c_int,
    bitmap_width: unsafe extern "C" fn(Bitmap) -> c_int,
    bitmap_height: unsafe extern "C" fn(Bitmap) -> c_int,
    bitmap_stride: unsafe extern "C" fn(Bitmap) -> c_int,
    bitmap_buffer: unsafe extern "C" fn(Bitmap) -> *mut c_void,
}

/// `FS_RECTF` (fpdfview.h).
#[repr(C)]
#[derive(Default)]
struct RectF {
    left: c_float,
    top: c_float,
    right: c_float,
    bottom: c_float,
}

/// `FS_MATRIX` (fpdfview.h): x' = a·x + c·y + e, y' = b·x + d·y + f.
#[repr(C)]
#[derive(Default)]
struct Matrix {
    a: c_float,
    b: c_float,
    c: c_float,
    d: c_float,
    e: c_float,
    f: c_float,
}

/// `FPDF_IMAGEOBJ_METADATA` (fpdf_edit.h).
#[repr(C)]
#[derive(Default)]
struct ImageMetadata {
    width: c_uint,
    height: c_uint,
    horizontal_dpi: c_float,
    vertical_dpi: c_float,
    bits_per_pixel: c_uint,
    colorspace: c_int,
    marked_content_id: c_int,
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
                page_rotation: sym(&lib, "FPDFPage_GetRotation")?,
                page_box: sym(&lib, "FPDF_GetPageBoundingBox")?,
                obj_bounds: sym(&lib, "FPDFPageObj_GetBounds")?,
                obj_matrix: sym(&lib, "FPDFPageObj_GetMatrix")?,
                text_render_mode: sym(&lib, "FPDFTextObj_GetTextRenderMode")?,
                image_pixel_size: sym(&lib, "FPDFImageObj_GetImagePixelSize")?,
                image_metadata: sym(&lib, "FPDFImageObj_GetImageMetadata")?,
                image_bitmap: sym(&lib, "FPDFImageObj_GetBitmap")?,
                bitmap_format: sym(&lib, "FPDFBitmap_GetFormat")?,
                bitmap_width: sym(&lib, "FPDFBitmap_GetWidth")?,
                bitmap_height: sym(&lib, "FPDFBitmap_GetHeight")?,
                bitmap_stride: sym(&lib, "FPDFBitmap_GetStride")?,
                bitmap_buffer: sym(&lib, "FPDFBitmap_GetBuffer")?,
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

/// A greyscale page image for OCR, one byte per pixel.
pub struct Render {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Rows of `width` bytes.
    pub pixels: Vec<u8>,
    /// Its resolution: pixels per inch of the page.
    pub dpi: u32,
    /// Whether these are the pixels of the page's own image (a scan) rather than a rendering.
    pub native: bool,
}

/// Why a page is not read from its own image, and so is rendered instead.
#[derive(Debug, Clone, PartialEq)]
pub enum NotNative {
    /// The page holds no image, or more than one.
    Images(usize),
    /// The page shows something besides its image (visible text, paths, forms, shadings).
    OtherObjects(usize),
    /// The image covers under 90% of the page, or lies over 10% outside it.
    Coverage(f32),
    /// The page is turned (`/Rotate`), by this many degrees.
    Rotated(i32),
    /// The image is rotated, skewed or flipped on the page.
    Transformed,
    /// Its pixels are not square on the page (horizontal and vertical dpi differ over 2%).
    Anisotropic(f32, f32),
    /// Its resolution is outside 50–1,200 dpi.
    Resolution(f32),
    /// It is a stencil mask or has a colour space without a fixed grey (pattern).
    NotGrey,
    /// It would be over the pixel budget.
    TooLarge(usize),
    /// PDFium cannot decode it, or gives a format zest does not read.
    Undecodable,
}

impl std::fmt::Display for NotNative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotNative::Images(n) => write!(f, "{n} images on the page, not one"),
            NotNative::OtherObjects(n) => write!(f, "{n} visible objects besides the image"),
            NotNative::Coverage(c) => write!(f, "the image covers {:.0}% of the page", c * 100.0),
            NotNative::Rotated(d) => write!(f, "the page is turned by {d} degrees"),
            NotNative::Transformed => write!(f, "the image is rotated, skewed or flipped"),
            NotNative::Anisotropic(x, y) => {
                write!(f, "the image is {x:.0} dpi across and {y:.0} dpi down")
            }
            NotNative::Resolution(d) => write!(f, "the image is {d:.0} dpi"),
            NotNative::NotGrey => write!(f, "the image is a stencil mask or a pattern"),
            NotNative::TooLarge(n) => write!(f, "the image has {n} pixels, over the limit"),
            NotNative::Undecodable => write!(f, "the image cannot be decoded"),
        }
    }
}

/// The least share of the page the image must cover, and of the image that must lie on the page.
const MIN_COVER: f32 = 0.9;

/// Area of the intersection of two boxes `[left, bottom, right, top]`.
fn overlap(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = a[2].min(b[2]) - a[0].max(b[0]);
    let h = a[3].min(b[3]) - a[1].max(b[1]);
    w.max(0.0) * h.max(0.0)
}

fn area(r: [f32; 4]) -> f32 {
    (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0)
}

/// Grey from PDFium's bitmap formats (fpdfview.h): 1 grey, 2 BGR, 3 BGRx, 4 BGRA, 5 BGRA with
/// premultiplied alpha; colour by Rec. 601 luma, transparency over white. Rows of `stride`
/// bytes in, packed rows out; None for other formats or a short buffer.
fn to_grey(
    format: c_int,
    buf: &[u8],
    width: usize,
    height: usize,
    stride: usize,
) -> Option<Vec<u8>> {
    let bpp = match format {
        1 => 1,
        2 => 3,
        3..=5 => 4,
        _ => return None,
    };
    if width == 0
        || height == 0
        || stride < width * bpp
        || buf.len() < stride * (height - 1) + width * bpp
    {
        return None;
    }
    let luma =
        |p: &[u8]| ((29 * p[0] as u32 + 150 * p[1] as u32 + 77 * p[2] as u32 + 128) >> 8) as u8;
    let mut out = Vec::with_capacity(width * height);
    for row in buf.chunks(stride).take(height) {
        let row = &row[..width * bpp];
        match format {
            1 => out.extend_from_slice(row),
            2 => out.extend(row.chunks_exact(3).map(luma)),
            3 => out.extend(row.chunks_exact(4).map(luma)),
            4 => out.extend(row.chunks_exact(4).map(|p| {
                let (y, a) = (luma(p) as u32, p[3] as u32);
                ((y * a + 255 * (255 - a) + 127) / 255) as u8
            })),
            _ => out.extend(row.chunks_exact(4).map(|p| {
                let (y, a) = (luma(p) as u32, p[3] as u32);
                (y + 255 - a).min(255) as u8
            })),
        }
    }
    Some(out)
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

    /// The image of page `index` at its own resolution, when the page is a scan: one upright
    /// image object covering at least 90% of the page (and lying at least 90% on it), on a
    /// page not turned by `/Rotate`, with nothing else visible (invisible text, as OCR'd scans
    /// carry, and objects of no area or off the page do not count). Its pixels come decoded as
    /// the PDF stores them, without the page's scaling; its dpi is its pixel width over its
    /// width on the page in inches. Otherwise, or when the image has more than `max_pixels`
    /// pixels or cannot be decoded, says why not. Errors when the page cannot be loaded.
    pub fn native_image(
        &self,
        index: usize,
        max_pixels: usize,
    ) -> Result<std::result::Result<Render, NotNative>> {
        let api = &*self.s.api;
        let p = self.page(index)?;
        // SAFETY: `p.page` is open; objects are the page's and live as long as it; the bitmap
        // made here is destroyed before return, its buffer read within its bounds.
        unsafe {
            let rotation = (api.page_rotation)(p.page);
            if rotation != 0 {
                return Ok(Err(NotNative::Rotated(rotation * 90)));
            }
            let mut r = RectF::default();
            let page_box = if (api.page_box)(p.page, &mut r) != 0 {
                [r.left, r.bottom, r.right, r.top]
            } else {
                [
                    0.0,
                    0.0,
                    (api.page_width)(p.page),
                    (api.page_height)(p.page),
                ]
            };
            let bounds = |o: PageObj| {
                let (mut l, mut b, mut r, mut t) = (0.0, 0.0, 0.0, 0.0);
                ((api.obj_bounds)(o, &mut l, &mut b, &mut r, &mut t) != 0).then_some([l, b, r, t])
            };
            let (mut images, mut others) = (vec![], 0);
            for i in 0..(api.obj_count)(p.page) {
                let o = (api.obj_get)(p.page, i);
                let kind = (api.obj_type)(o);
                if kind == 3 {
                    images.push(o);
                    continue;
                }
                // Invisible text (render mode 3) is an OCR layer, not something on the page.
                if kind == 1 && (api.text_render_mode)(o) == 3 {
                    continue;
                }
                if bounds(o).is_some_and(|b| overlap(b, page_box) > 0.0) {
                    others += 1;
                }
            }
            if images.len() != 1 {
                return Ok(Err(NotNative::Images(images.len())));
            }
            if others > 0 {
                return Ok(Err(NotNative::OtherObjects(others)));
            }
            let img = images[0];
            let Some(b) = bounds(img) else {
                return Ok(Err(NotNative::Coverage(0.0)));
            };
            let on_page = overlap(b, page_box);
            let cover = (on_page / area(page_box).max(f32::MIN_POSITIVE))
                .min(on_page / area(b).max(f32::MIN_POSITIVE));
            if cover < MIN_COVER {
                return Ok(Err(NotNative::Coverage(cover)));
            }
            let mut m = Matrix::default();
            if (api.obj_matrix)(img, &mut m) == 0 {
                return Ok(Err(NotNative::Transformed));
            }
            // Upright: the unit square scaled, not rotated, skewed or flipped.
            let scale = m.a.abs().max(m.d.abs());
            if m.a <= 0.0 || m.d <= 0.0 || m.b.abs() > 1e-3 * scale || m.c.abs() > 1e-3 * scale {
                return Ok(Err(NotNative::Transformed));
            }
            let (mut pw, mut ph) = (0, 0);
            if (api.image_pixel_size)(img, &mut pw, &mut ph) == 0 || pw == 0 || ph == 0 {
                return Ok(Err(NotNative::Undecodable));
            }
            let (pw, ph) = (pw as usize, ph as usize);
            if pw.saturating_mul(ph) > max_pixels {
                return Ok(Err(NotNative::TooLarge(pw.saturating_mul(ph))));
            }
            let (dx, dy) = (pw as f32 * 72.0 / m.a, ph as f32 * 72.0 / m.d);
            if (dx - dy).abs() > 0.02 * dx.max(dy) {
                return Ok(Err(NotNative::Anisotropic(dx, dy)));
            }
            let dpi = (dx + dy) / 2.0;
            if !(50.0..=1200.0).contains(&dpi) {
                return Ok(Err(NotNative::Resolution(dpi)));
            }
            // Stencil masks (no colour space: their samples say where to paint, not how dark)
            // and patterns are left to the renderer.
            let mut meta = ImageMetadata::default();
            if (api.image_metadata)(img, p.page, &mut meta) == 0
                || meta.colorspace == 0
                || meta.colorspace == 11
            {
                return Ok(Err(NotNative::NotGrey));
            }
            let bmp = (api.image_bitmap)(img);
            if bmp.is_null() {
                return Ok(Err(NotNative::Undecodable));
            }
            let (format, w, h, stride) = (
                (api.bitmap_format)(bmp),
                (api.bitmap_width)(bmp).max(0) as usize,
                (api.bitmap_height)(bmp).max(0) as usize,
                (api.bitmap_stride)(bmp).max(0) as usize,
            );
            let buf = (api.bitmap_buffer)(bmp) as *const u8;
            let grey = if buf.is_null() || (w, h) != (pw, ph) || h == 0 {
                None
            } else {
                let buf = std::slice::from_raw_parts(buf, stride * h);
                to_grey(format, buf, w, h, stride)
            };
            (api.bitmap_destroy)(bmp);
            Ok(match grey {
                Some(pixels) => Ok(Render {
                    width: w,
                    height: h,
                    pixels,
                    dpi: dpi.round() as u32,
                    native: true,
                }),
                None => Err(NotNative::Undecodable),
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
                dpi,
                native: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_from_every_bitmap_format() {
        // Two pixels a row, two rows, rows padded to 8 bytes (or 12 for four bytes a pixel).
        let g = to_grey(1, &[10, 20, 0, 0, 0, 0, 0, 0, 30, 40], 2, 2, 8).unwrap();
        assert_eq!(g, [10, 20, 30, 40]);
        // BGR: white, pure blue; then pure green, pure red.
        let bgr = [255, 255, 255, 255, 0, 0, 0, 0, 0, 255, 0, 0, 0, 255];
        assert_eq!(to_grey(2, &bgr, 2, 2, 8).unwrap(), [255, 29, 149, 77]);
        // BGRx ignores the fourth byte; BGRA lays transparency over white.
        let bgrx = [
            0, 0, 0, 7, 255, 255, 255, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(to_grey(3, &bgrx, 2, 2, 12).unwrap(), [0, 255, 0, 0]);
        let bgra = [
            0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 0, 0, 0, 255,
        ];
        assert_eq!(to_grey(4, &bgra, 2, 2, 12).unwrap(), [0, 255, 127, 0]);
        // Premultiplied: black at half opacity is stored as 0 with alpha 128.
        assert_eq!(to_grey(5, &bgra, 2, 2, 12).unwrap(), [0, 255, 127, 0]);
    }

    #[test]
    fn unknown_formats_and_short_buffers_are_refused() {
        assert_eq!(to_grey(0, &[0; 16], 2, 2, 8), None);
        assert_eq!(to_grey(1, &[0; 9], 2, 2, 8), None);
        assert_eq!(to_grey(2, &[0; 16], 2, 2, 4), None);
    }

    #[test]
    fn overlap_of_boxes() {
        let page = [0.0, 0.0, 100.0, 200.0];
        assert_eq!(overlap(page, page), area(page));
        assert_eq!(overlap(page, [50.0, 100.0, 150.0, 300.0]), 50.0 * 100.0);
        assert_eq!(overlap(page, [200.0, 0.0, 300.0, 10.0]), 0.0);
    }
}
