"""Builds the PDFs the ingest tests read, from known text, and writes that text as ground truth.

    python make_pdfs.py OUT_DIR [--pages N]
    python make_pdfs.py OUT_DIR --set ocr [--pages N]

Writes OUT_DIR/*.pdf and OUT_DIR/truth.json: {file: [page text, ...]} for the readable files,
and {file: null} for the ones that must be rejected. Born-digital pages are typeset with
reportlab (fonts embedded: Liberation Serif, WenQuanYi Micro Hei), with a running header, a
page-number footer and words hyphenated at line ends; scanned pages are drawn with Pillow at
300 dpi, slightly noisy, and embedded as images with no text layer.

`--set ocr` writes the OCR-resolution set instead: English scans of N pages (default 3) drawn
at 200 dpi (scan_200dpi_en.pdf) and at 300 dpi (scan_300dpi_en.pdf), each page also saved as
the PNG that was embedded (OUT_DIR/png/<pdf stem>-<page>.png, its dpi in the PNG), so that
Tesseract's CLI can read the very images the PDFs hold; a 200-dpi scan whose page is rotated
by /Rotate 90 (scan_rotated_en.pdf) and one whose image sits beside a line of typeset text
(scan_with_text_en.pdf), both one small page; a grainy 200-dpi scan of 9-pt text
(scan_grainy_200dpi_en.pdf, one page) and a Chinese 200-dpi scan (scan_200dpi_zh.pdf, two
pages), with their PNGs.
"""

import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

ROOT = Path(__file__).resolve().parents[2]
SERIF = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"
SERIF_BOLD = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Bold.ttf"
CJK = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"

# Chinese paragraphs written for these tests (general medical knowledge).
ZH = [
    "高血压是最常见的慢性病之一，也是心脑血管疾病最主要的危险因素。长期血压升高会损害心脏、大脑、肾脏和血管，"
    "导致冠心病、脑卒中、心力衰竭和慢性肾脏病等并发症。",
    "高血压的诊断以非同日三次测量的诊室血压为依据，收缩压不低于一百四十毫米汞柱和舒张压不低于九十毫米汞柱即可诊断。"
    "家庭血压监测和动态血压监测有助于发现白大衣高血压和隐匿性高血压。",
    "生活方式干预是治疗的基础，包括减少钠盐摄入、增加钾摄入、控制体重、戒烟限酒、规律运动和保持心理平衡。"
    "药物治疗常用的药物有血管紧张素转换酶抑制剂、血管紧张素受体拮抗剂、钙通道阻滞剂、利尿剂和β受体阻滞剂。",
    "糖尿病是一组以高血糖为特征的代谢性疾病，典型症状为多饮、多尿、多食和体重下降。空腹血糖和糖化血红蛋白是诊断和随访的重要指标。"
    "二甲双胍通常是二型糖尿病患者的首选药物，治疗过程中应定期监测肾功能。",
    "社区获得性肺炎常见的症状包括发热、咳嗽、咳痰和胸痛，胸部影像学检查可见新出现的浸润影。"
    "治疗应根据病情严重程度和病原体选择合适的抗菌药物，重症患者需要住院治疗并密切观察生命体征。",
    "慢性阻塞性肺疾病以持续的呼吸道症状和气流受限为特征，吸烟是最重要的危险因素。肺功能检查是诊断的金标准，"
    "吸入支气管舒张剂可以改善症状，减少急性加重的次数。",
]


def english_paragraphs(n, seed):
    """Abstract paragraphs from the embedded PubMedQA sample."""
    rows = [json.loads(l) for l in (ROOT / "dags/data/pubmedqa_sample.jsonl").open()]
    rnd = random.Random(seed)
    rnd.shuffle(rows)
    out = []
    for r in rows:
        for c in r["contexts"]:
            c = " ".join(c.split())
            if 300 < len(c) < 1100:
                out.append(c)
        if len(out) >= n:
            break
    return out[:n]


def wrap(text, width, measure, hyphenate=True, cjk=False):
    """Greedy line breaking; long words are hyphenated when they do not fit."""
    if cjk:
        lines, cur = [], ""
        for ch in text:
            if measure(cur + ch) > width:
                lines.append(cur)
                cur = ch
            else:
                cur += ch
        return lines + ([cur] if cur else [])
    lines, cur = [], ""
    for w in text.split(" "):
        cand = w if not cur else cur + " " + w
        if measure(cand) <= width:
            cur = cand
            continue
        if hyphenate and len(w) >= 8 and w.isalpha():
            # Break the word so that its head (with a hyphen) fills the line.
            for k in range(len(w) - 3, 2, -1):
                head = (cur + " " if cur else "") + w[:k] + "-"
                if measure(head) <= width:
                    lines.append(head)
                    cur = w[k:]
                    break
            else:
                lines.append(cur)
                cur = w
        else:
            if cur:
                lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    return lines


def register_fonts():
    pdfmetrics.registerFont(TTFont("Serif", SERIF))
    pdfmetrics.registerFont(TTFont("SerifBold", SERIF_BOLD))
    pdfmetrics.registerFont(TTFont("CJK", CJK, subfontIndex=0))


def digital(path, paras_per_page, header, cjk=False, size=11):
    """A born-digital PDF: one column, running header, page numbers, hyphenated lines."""
    font = "CJK" if cjk else "Serif"
    w, h = A4
    margin = 72
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    c.setTitle(header)
    truth = []
    for pno, paras in enumerate(paras_per_page, 1):
        c.setFont(font, 9)
        c.drawString(margin, h - 40, header)
        c.drawCentredString(w / 2, 30, f"Page {pno}" if not cjk else f"第 {pno} 页")
        y = h - margin
        c.setFont(font, size)
        for p in paras:
            for line in wrap(p, w - 2 * margin, lambda s: pdfmetrics.stringWidth(s, font, size), cjk=cjk):
                c.drawString(margin, y, line)
                y -= size * 1.35
            y -= size * 0.9
        truth.append("\n\n".join(paras))
        c.showPage()
    c.save()
    return truth


def two_columns(path, title, paras):
    """Two columns under a spanning title; lines written row by row across both columns, so
    that content order is not reading order."""
    w, h = A4
    margin, gutter, size = 54, 24, 10
    col_w = (w - 2 * margin - gutter) / 2
    measure = lambda s: pdfmetrics.stringWidth(s, "Serif", size)
    half = len(paras) // 2
    cols = [paras[:half], paras[half:]]
    col_lines = []
    for col in cols:
        lines = []
        for i, p in enumerate(col):
            if i:
                lines.append(None)  # paragraph gap
            lines += wrap(p, col_w, measure)
        col_lines.append(lines)
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    c.setFont("SerifBold", 16)
    c.drawString(margin, h - 60, title)
    c.setFont("Serif", size)
    top = h - 95
    for row in range(max(len(l) for l in col_lines)):
        for k, lines in enumerate(col_lines):
            if row < len(lines) and lines[row] is not None:
                c.drawString(margin + k * (col_w + gutter), top - row * size * 1.3, lines[row])
    c.showPage()
    c.save()
    return [title + "\n\n" + "\n\n".join(cols[0]) + "\n\n" + "\n\n".join(cols[1])]


def scanned(path, paras_per_page, cjk=False, dpi=300, seed=0, png_dir=None, pagesize=A4, rotate=0, caption=None,
            size=11, blur=0.6, grain=0):
    """A scanned PDF: each page a greyscale image of the text (`size` pt) drawn at `dpi` (300 by
    default), with a little noise: a Gaussian blur of `blur` pixels, sparse specks and, with
    `grain`, every pixel moved by up to ±`grain` grey levels. With `png_dir`, each page image
    is also saved there as `<stem>-<page>.png` with its dpi; `rotate` sets the pages' /Rotate;
    `caption` is typeset (as text, not in the image) at the foot of each page."""
    rnd = random.Random(seed)
    w_pt, h_pt = pagesize
    W, H = int(w_pt / 72 * dpi), int(h_pt / 72 * dpi)
    font = ImageFont.truetype(CJK if cjk else SERIF, int(size * dpi / 72), index=0)
    margin = int(dpi) if w_pt > 500 else int(dpi / 2)  # an inch; half on small pages
    # A page shown turned by /Rotate 90 holds its image turned the other way, as a scanner
    # that stores the page as it was fed writes it.
    media = (h_pt, w_pt) if rotate in (90, 270) else (w_pt, h_pt)
    c = canvas.Canvas(str(path), pagesize=media, invariant=1)
    truth = []
    for pno, paras in enumerate(paras_per_page, 1):
        img = Image.new("L", (W, H), 255)
        d = ImageDraw.Draw(img)
        y = margin
        line_h = int(size * 1.4 * dpi / 72)
        for p in paras:
            for line in wrap(p, W - 2 * margin, lambda s: d.textlength(s, font=font), hyphenate=False, cjk=cjk):
                d.text((margin, y), line, font=font, fill=rnd.randint(0, 40))
                y += line_h
            y += line_h // 2
        # Scanner noise: a light blur and sparse specks.
        img = img.filter(ImageFilter.GaussianBlur(blur))
        if grain:
            noise = Image.frombytes("L", (W, H), rnd.randbytes(W * H)).point(lambda v: v * 2 * grain // 255)
            img = ImageChops.add(img, noise, 1.0, -grain)
        px = img.load()
        for _ in range(W * H // 4000):
            px[rnd.randrange(W), rnd.randrange(H)] = rnd.randint(120, 200)
        if png_dir is not None:
            Path(png_dir).mkdir(parents=True, exist_ok=True)
            img.save(Path(png_dir) / f"{Path(path).stem}-{pno}.png", dpi=(dpi, dpi))
        if rotate:
            c.setPageRotation(rotate)
            img = img.rotate(rotate, expand=True)
        c.drawImage(ImageReader(img), 0, 0, width=media[0], height=media[1])
        text = "\n\n".join(paras)
        if caption is not None:
            c.setFont("Serif", 10)
            c.drawString(18, 12, caption)
            text += "\n\n" + caption
        c.showPage()
        truth.append(text)
    c.save()
    return truth


def bad_files(out, good):
    (out / "empty.pdf").write_bytes(b"")
    (out / "not_a_pdf.pdf").write_text("<html><body>This is a web page saved with a .pdf name.</body></html>\n")
    data = good.read_bytes()
    (out / "truncated.pdf").write_bytes(data[: len(data) * 2 // 5])
    # A PDF header and end marker around bytes that are no PDF at all.
    rnd = random.Random(3)
    body = bytes(rnd.randrange(256) for _ in range(4000))
    (out / "corrupt.pdf").write_bytes(b"%PDF-1.4\n" + body + b"\n%%EOF\n")
    zero = (
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    )
    xref = len(zero)
    zero += (
        b"xref\n0 3\n0000000000 65535 f \n"
        + b"%010d 00000 n \n" % 9
        + b"%010d 00000 n \n" % zero.index(b"2 0 obj")
        + b"trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    )
    (out / "zero_pages.pdf").write_bytes(zero)
    c = canvas.Canvas(str(out / "encrypted.pdf"), pagesize=A4, encrypt="secret-password")
    c.setFont("Serif", 11)
    c.drawString(72, 700, "Confidential patient notes.")
    c.showPage()
    c.save()
    return {n: None for n in ["empty.pdf", "not_a_pdf.pdf", "truncated.pdf", "corrupt.pdf", "zero_pages.pdf", "encrypted.pdf"]}


def ocr_set(out, pages):
    """Scans at 200 and 300 dpi with their page images as PNGs, and two pages that are not
    a lone upright image (rotated; image plus typeset text)."""
    en = english_paragraphs(pages * 3 * 2 + 6, seed=7)
    png = out / "png"
    truth = {}
    for k, dpi in enumerate((200, 300)):
        paras = en[k * pages * 3 : (k + 1) * pages * 3]
        name = f"scan_{dpi}dpi_en.pdf"
        truth[name] = scanned(out / name, [paras[3 * i : 3 * i + 3] for i in range(pages)], dpi=dpi, seed=11 + k, png_dir=png)
    a5 = (419.53, 595.28)
    rest = en[pages * 6 :]
    truth["scan_rotated_en.pdf"] = scanned(out / "scan_rotated_en.pdf", [rest[0:1]], dpi=200, seed=13, pagesize=a5, rotate=90)
    truth["scan_with_text_en.pdf"] = scanned(
        out / "scan_with_text_en.pdf", [rest[1:2]], dpi=200, seed=14, pagesize=a5, caption="Page 7 of 12"
    )
    truth["scan_grainy_200dpi_en.pdf"] = scanned(
        out / "scan_grainy_200dpi_en.pdf", [rest[2:4]], dpi=200, seed=15, png_dir=png, size=9, blur=0.8, grain=50
    )
    truth["scan_200dpi_zh.pdf"] = scanned(out / "scan_200dpi_zh.pdf", [ZH[0:3], ZH[3:6]], cjk=True, dpi=200, seed=1, png_dir=png)
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1))


def main():
    out = Path(sys.argv[1])
    pages = int(sys.argv[sys.argv.index("--pages") + 1]) if "--pages" in sys.argv else 3
    out.mkdir(parents=True, exist_ok=True)
    register_fonts()
    if "--set" in sys.argv and sys.argv[sys.argv.index("--set") + 1] == "ocr":
        ocr_set(out, pages)
        return
    en = english_paragraphs(pages * 2 + 12, seed=1)
    truth = {}
    truth["digital_en.pdf"] = digital(
        out / "digital_en.pdf", [en[2 * i : 2 * i + 2] for i in range(pages)], "Handbook of Clinical Medicine"
    )
    truth["two_columns_en.pdf"] = two_columns(out / "two_columns_en.pdf", "Guideline Summary", en[pages * 2 : pages * 2 + 4])
    truth["digital_zh.pdf"] = digital(
        out / "digital_zh.pdf", [ZH[0:3], ZH[3:6]], "临床诊疗指南", cjk=True
    )
    truth["scanned_en.pdf"] = scanned(out / "scanned_en.pdf", [en[pages * 2 + 4 : pages * 2 + 6], en[pages * 2 + 6 : pages * 2 + 8]])
    truth["scanned_zh.pdf"] = scanned(out / "scanned_zh.pdf", [ZH[0:3], ZH[3:6]], cjk=True, seed=1)
    truth.update(bad_files(out, out / "digital_en.pdf"))
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
