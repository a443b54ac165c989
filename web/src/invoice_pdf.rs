//! Invoices as PDF: an invoice in, the bytes of an A4 document out, and the
//! download response the portal and the admin UI both send. The rendering is pure
//! (no I/O, no clock), so the same invoice always gives the same bytes. A draft
//! (never issued, which only admins can download) says so in its title and footer.
//!
//! Written with `pdf-writer` in Helvetica, one of the standard fonts every
//! reader has, so nothing is embedded; text is WinAnsi-encoded (characters
//! outside it are replaced, see [`winansi`]) and content streams are left
//! uncompressed. Amounts carry currency codes, never symbols.

use actix_web::HttpResponse;
use actix_web::http::header;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use tollgate_core::billing::document::{InvoiceDocument, day, quantity};

/// A4 in points.
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;
/// Below this a page takes no more lines; the totals need a little more.
const BOTTOM: f32 = 80.0;
const BODY: f32 = 9.5;
const LEADING: f32 = 12.5;

/// Right edges of the number columns and the width of the description column.
const QUANTITY_RIGHT: f32 = 365.0;
const PRICE_RIGHT: f32 = 455.0;
const AMOUNT_RIGHT: f32 = PAGE_WIDTH - MARGIN;
const DESCRIPTION_WIDTH: f32 = 245.0;

const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// The invoice as a PDF attachment, `invoice-<number>.pdf` (`invoice-<number>-draft.pdf`
/// for a draft), never cached by a shared cache.
pub fn download(doc: &InvoiceDocument) -> HttpResponse {
    // Numbers are `YYYY-MM-NNNNNNNN`, so the file name needs no quoting beyond the quotes.
    let number: String = doc.number.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    let draft = if doc.is_draft() { "-draft" } else { "" };
    HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"invoice-{number}{draft}.pdf\"")))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(render(doc))
}

/// The invoice as a PDF document.
pub fn render(doc: &InvoiceDocument) -> Vec<u8> {
    let mut pages = vec![Page::new()];
    let mut page = 0;
    let mut y = header(&mut pages[0], doc);
    y = table_head(&mut pages[page], y);
    for line in &doc.lines {
        let wrapped = wrap(&line.description, Font::Regular, BODY, DESCRIPTION_WIDTH);
        let height = LEADING * wrapped.len() as f32 + 4.0;
        if y - height < BOTTOM {
            pages.push(Page::new());
            page += 1;
            y = table_head(&mut pages[page], PAGE_HEIGHT - MARGIN);
        }
        let p = &mut pages[page];
        for (i, text) in wrapped.iter().enumerate() {
            p.text(Font::Regular, BODY, MARGIN, y - LEADING * i as f32, text);
        }
        p.right(Font::Regular, BODY, QUANTITY_RIGHT, y, &quantity(&line.quantity));
        p.right(Font::Regular, BODY, PRICE_RIGHT, y, &doc.price(&line.unit_price));
        p.right(Font::Regular, BODY, AMOUNT_RIGHT, y, &doc.money(&line.amount));
        y -= height;
        p.rule(y + LEADING - 4.0, 0.85);
    }
    if doc.lines.is_empty() {
        pages[page].text(Font::Regular, BODY, MARGIN, y, "No charges this period.");
        y -= LEADING + 4.0;
    }
    if y - 4.0 * LEADING < BOTTOM {
        pages.push(Page::new());
        page += 1;
        y = PAGE_HEIGHT - MARGIN;
    }
    let p = &mut pages[page];
    y -= 6.0;
    let tax = format!("Tax ({})", doc.tax_percent());
    for (label, amount, font) in [
        ("Subtotal", doc.subtotal, Font::Regular),
        (tax.as_str(), doc.tax, Font::Regular),
        ("Total", doc.total, Font::Bold),
    ] {
        let size = if font == Font::Bold { 11.0 } else { BODY };
        p.right(font, size, PRICE_RIGHT, y, label);
        p.right(font, size, AMOUNT_RIGHT, y, &doc.money(&amount));
        y -= LEADING + 2.0;
    }
    if let Some(instructions) = doc.payment_instructions() {
        let mut text: Vec<String> = instructions
            .lines()
            .flat_map(|line| wrap(line.trim_end(), Font::Regular, BODY, PAGE_WIDTH - 2.0 * MARGIN))
            .collect();
        text.push(format!("Quote invoice number {} with your payment.", doc.number));
        y -= LEADING;
        for (i, line) in std::iter::once("How to pay".to_owned()).chain(text).enumerate() {
            if y < BOTTOM {
                pages.push(Page::new());
                page += 1;
                y = PAGE_HEIGHT - MARGIN;
            }
            let font = if i == 0 { Font::Bold } else { Font::Regular };
            pages[page].text(font, BODY, MARGIN, y, &line);
            y -= LEADING;
        }
    }
    let count = pages.len();
    for (i, p) in pages.iter_mut().enumerate() {
        let kind = if doc.is_draft() { "DRAFT invoice" } else { "Invoice" };
        let footer = format!("{kind} {} - page {} of {count} - amounts in {}", doc.number, i + 1, doc.currency);
        p.text(Font::Regular, 8.0, MARGIN, MARGIN - 20.0, &footer);
    }
    assemble(doc, pages)
}

/// The issuer, the customer, the invoice's facts; returns where the table starts.
fn header(p: &mut Page, doc: &InvoiceDocument) -> f32 {
    let top = PAGE_HEIGHT - MARGIN;
    let title = if doc.is_draft() { "DRAFT invoice - not issued" } else { "Invoice" };
    p.text(Font::Bold, 20.0, MARGIN, top - 16.0, title);
    p.text(Font::Regular, 11.0, MARGIN, top - 34.0, &format!("Number {}", doc.number));
    // The issuer, frozen when the invoice was issued, at the top right.
    let mut y = top - 10.0;
    if !doc.issuer.name.is_empty() {
        p.right(Font::Bold, 11.0, AMOUNT_RIGHT, y, &doc.issuer.name);
        y -= 14.0;
    }
    for line in doc.issuer.address.lines().map(str::trim).filter(|l| !l.is_empty()) {
        p.right(Font::Regular, BODY, AMOUNT_RIGHT, y, line);
        y -= LEADING;
    }
    if !doc.issuer.tax_id.is_empty() {
        p.right(Font::Regular, BODY, AMOUNT_RIGHT, y, &format!("Tax ID {}", doc.issuer.tax_id));
        y -= LEADING;
    }
    let mut left = top - 70.0;
    p.text(Font::Bold, BODY, MARGIN, left, "Billed to");
    left -= LEADING;
    p.text(Font::Regular, BODY, MARGIN, left, &doc.account_name);
    let facts = [
        ("Period", format!("{} to {}", doc.period_start, doc.period_last_day())),
        ("Issued", day(doc.issued_at)),
        ("Due", day(doc.due_at)),
        ("Paid", day(doc.paid_at)),
        ("State", doc.state.to_string()),
    ];
    let mut right = (top - 70.0).min(y - 10.0);
    for (label, value) in &facts {
        p.text(Font::Bold, BODY, 330.0, right, label);
        p.text(Font::Regular, BODY, 390.0, right, value);
        right -= LEADING;
    }
    left.min(right) - 20.0
}

fn table_head(p: &mut Page, y: f32) -> f32 {
    p.text(Font::Bold, BODY, MARGIN, y, "Description");
    p.right(Font::Bold, BODY, QUANTITY_RIGHT, y, "Quantity");
    p.right(Font::Bold, BODY, PRICE_RIGHT, y, "Unit price");
    p.right(Font::Bold, BODY, AMOUNT_RIGHT, y, "Amount");
    p.rule(y - 5.0, 0.0);
    y - LEADING - 6.0
}

fn assemble(doc: &InvoiceDocument, pages: Vec<Page>) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first_page = 6;
    let page_ids: Vec<Ref> = (0..pages.len()).map(|i| Ref::new(first_page + 2 * i as i32)).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(page_ids.iter().copied()).count(pages.len() as i32);
    pdf.type1_font(regular).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    // No dates here: the same invoice gives the same bytes.
    let title = format!("Invoice {}", doc.number);
    pdf.document_info(info).title(TextStr(&title)).producer(TextStr("Tollgate"));
    for (page, id) in pages.into_iter().zip(&page_ids) {
        let contents = Ref::new(id.get() + 1);
        let mut writer = pdf.page(*id);
        writer.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT)).parent(tree).contents(contents);
        writer.resources().fonts().pair(REGULAR, regular).pair(BOLD, bold);
        writer.finish();
        pdf.stream(contents, &page.content.finish());
    }
    pdf.finish()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Font::Regular => REGULAR,
            Font::Bold => BOLD,
        }
    }

    /// Width of WinAnsi-encoded text in points.
    fn width(self, bytes: &[u8], size: f32) -> f32 {
        let table = match self {
            Font::Regular => &HELVETICA,
            Font::Bold => &HELVETICA_BOLD,
        };
        let units: u32 = bytes.iter().map(|&b| u32::from(table[usize::from(b.max(32) - 32)])).sum();
        units as f32 * size / 1000.0
    }
}

struct Page {
    content: Content,
}

impl Page {
    fn new() -> Page {
        let mut content = Content::new();
        // Black text and rules on white: it prints as it shows.
        content.set_fill_gray(0.0).set_stroke_gray(0.0).set_line_width(0.5);
        Page { content }
    }

    fn text(&mut self, font: Font, size: f32, x: f32, y: f32, text: &str) {
        let bytes = winansi(text);
        self.content.begin_text();
        self.content.set_font(font.name(), size);
        self.content.next_line(x, y);
        self.content.show(Str(&bytes));
        self.content.end_text();
    }

    /// Text ending at `right`.
    fn right(&mut self, font: Font, size: f32, right: f32, y: f32, text: &str) {
        let width = font.width(&winansi(text), size);
        self.text(font, size, right - width, y, text);
    }

    /// A horizontal rule across the text column, `gray` from black (0) to white (1).
    fn rule(&mut self, y: f32, gray: f32) {
        self.content.set_stroke_gray(gray);
        self.content.move_to(MARGIN, y).line_to(PAGE_WIDTH - MARGIN, y).stroke();
        self.content.set_stroke_gray(0.0);
    }
}

/// Splits text into lines no wider than `width`, at spaces where it can and
/// inside a word only when the word alone is too wide.
fn wrap(text: &str, font: Font, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let candidate = if current.is_empty() { word.to_owned() } else { format!("{current} {word}") };
        if font.width(&winansi(&candidate), size) <= width {
            current = candidate;
            continue;
        }
        if !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        for ch in word.chars() {
            let mut longer = current.clone();
            longer.push(ch);
            if !current.is_empty() && font.width(&winansi(&longer), size) > width {
                lines.push(std::mem::replace(&mut current, ch.to_string()));
            } else {
                current = longer;
            }
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// Text in the WinAnsi encoding of the standard fonts. Latin-1 and the
/// typographic marks WinAnsi has map to their codes; a few common characters
/// outside it get a plain spelling (`->`, `-`); anything else, and control
/// characters, become `?`, so a name in another script stays visibly replaced
/// rather than silently dropped.
fn winansi(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for ch in text.chars() {
        let code = ch as u32;
        match code {
            0x20..=0x7E | 0xA0..=0xFF => out.push(code as u8),
            _ => match ch {
                '\u{20AC}' => out.push(0x80),
                '\u{201A}' => out.push(0x82),
                '\u{0192}' => out.push(0x83),
                '\u{201E}' => out.push(0x84),
                '\u{2026}' => out.push(0x85),
                '\u{2020}' => out.push(0x86),
                '\u{2021}' => out.push(0x87),
                '\u{02C6}' => out.push(0x88),
                '\u{2030}' => out.push(0x89),
                '\u{0160}' => out.push(0x8A),
                '\u{2039}' => out.push(0x8B),
                '\u{0152}' => out.push(0x8C),
                '\u{017D}' => out.push(0x8E),
                '\u{2018}' => out.push(0x91),
                '\u{2019}' => out.push(0x92),
                '\u{201C}' => out.push(0x93),
                '\u{201D}' => out.push(0x94),
                '\u{2022}' => out.push(0x95),
                '\u{2013}' => out.push(0x96),
                '\u{2014}' => out.push(0x97),
                '\u{02DC}' => out.push(0x98),
                '\u{2122}' => out.push(0x99),
                '\u{0161}' => out.push(0x9A),
                '\u{203A}' => out.push(0x9B),
                '\u{0153}' => out.push(0x9C),
                '\u{017E}' => out.push(0x9E),
                '\u{0178}' => out.push(0x9F),
                '\t' | '\n' | '\r' | '\u{2002}'..='\u{200A}' | '\u{202F}' => out.push(b' '),
                '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2212}' => out.push(b'-'),
                '\u{2192}' => out.extend_from_slice(b"->"),
                '\u{2190}' => out.extend_from_slice(b"<-"),
                '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{FEFF}' => {}
                _ => out.push(b'?'),
            },
        }
    }
    out
}

/// Advance widths (thousandths of the font size) of WinAnsi codes 32 to 255,
/// from Adobe's font metrics for Helvetica; codes WinAnsi leaves undefined
/// are never written (see [`winansi`]).
#[rustfmt::skip]
const HELVETICA: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 350,
    556, 350, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350,
    350, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 350, 500, 667,
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];

/// The same for Helvetica-Bold.
#[rustfmt::skip]
const HELVETICA_BOLD: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 350,
    556, 350, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350,
    350, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 350, 500, 667,
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use tollgate_core::billing::document::{DocumentLine, Issuer};
    use tollgate_core::billing::{Currency, InvoiceState, LineKind};

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn invoice(lines: usize) -> InvoiceDocument {
        let line = |i: usize| DocumentLine {
            kind: LineKind::MonthlyFee,
            description: format!("Café app {i}: Pro monthly fee for 2025-10, prorated – 日本"),
            quantity: d("0.677419"),
            unit_price: d("31"),
            amount: d("21.00"),
        };
        InvoiceDocument {
            id: uuid::Uuid::nil(),
            number: "2025-10-00000042".into(),
            account_name: "Acme (Labs) \\ Ltd".into(),
            period: "2025-10".into(),
            period_start: time::macros::date!(2025 - 10 - 01),
            period_end: time::macros::date!(2025 - 11 - 01),
            currency: Currency::new("USD").expect("currency"),
            state: InvoiceState::Pending,
            issuer: Issuer {
                name: "Weather Corp".into(),
                address: "1 Main Street\nSpringfield".into(),
                tax_id: "EU123".into(),
                payment_instructions: String::new(),
            },
            lines: (0..lines).map(line).collect(),
            subtotal: d("21.00") * Decimal::from(lines),
            tax_rate: d("0.2"),
            tax: d("4.20") * Decimal::from(lines),
            total: d("25.20") * Decimal::from(lines),
            issued_at: Some(time::macros::datetime!(2025-11-01 12:00 UTC)),
            due_at: Some(time::macros::datetime!(2025-11-15 12:00 UTC)),
            paid_at: None,
        }
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn a_pdf_with_the_number_and_total_in_readable_text_and_the_same_bytes_every_time() {
        let doc = invoice(1);
        let bytes = render(&doc);
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(contains(&bytes, "%%EOF"));
        assert!(contains(&bytes, "(Number 2025-10-00000042)"), "the number is findable");
        assert!(contains(&bytes, "(25.20 USD)"), "the total is findable");
        assert!(contains(&bytes, "(Tax \\(20 %\\))") || contains(&bytes, "(Tax (20 %))"));
        assert!(contains(&bytes, "/WinAnsiEncoding"));
        assert!(!contains(&bytes, "/FlateDecode"), "content streams stay uncompressed");
        assert_eq!(render(&doc), bytes, "deterministic");
    }

    #[test]
    fn payment_instructions_are_printed_while_the_invoice_awaits_payment() {
        let mut doc = invoice(1);
        doc.issuer.payment_instructions = "IBAN DE89 3704 0044 0532 0130 00\nBIC COBADEFFXXX".into();
        let bytes = render(&doc);
        assert!(contains(&bytes, "(How to pay)") && contains(&bytes, "(BIC COBADEFFXXX)"));
        assert!(contains(&bytes, "(IBAN DE89 3704 0044 0532 0130 00)"));
        let paid = InvoiceDocument { state: InvoiceState::Paid, ..doc.clone() };
        assert!(!contains(&render(&paid), "How to pay"), "a paid invoice asks for nothing");
        let none =
            InvoiceDocument { issuer: Issuer { payment_instructions: String::new(), ..doc.issuer.clone() }, ..doc };
        assert!(!contains(&render(&none), "How to pay"));
    }

    #[test]
    fn a_draft_says_so_in_its_title_and_on_every_page() {
        let issued = render(&invoice(1));
        assert!(!contains(&issued, "DRAFT"));
        let draft = InvoiceDocument { state: InvoiceState::Open, issued_at: None, due_at: None, ..invoice(120) };
        let bytes = render(&draft);
        assert!(contains(&bytes, "(DRAFT invoice - not issued)"));
        let footers = bytes.windows(40).filter(|w| w.starts_with(b"(DRAFT invoice 2025-10-00000042 - page ")).count();
        let pages = bytes.windows(12).filter(|w| w.starts_with(b"/Type /Page") && w[11] != b's').count();
        assert!(pages >= 3 && footers == pages, "{footers} footers, {pages} pages");
    }

    #[test]
    fn many_lines_break_across_a4_pages() {
        let one = render(&invoice(1));
        let many = render(&invoice(120));
        // `/Type /Page` but not `/Type /Pages`.
        let pages = |b: &[u8]| b.windows(12).filter(|w| w.starts_with(b"/Type /Page") && w[11] != b's').count();
        assert_eq!(pages(&one), 1);
        assert!(pages(&many) >= 3, "{}", pages(&many));
        assert!(contains(&many, "/MediaBox [0 0 595 842]"));
        assert!(contains(&many, "page 3 of"));
    }

    #[test]
    fn text_outside_winansi_is_replaced_sensibly() {
        assert_eq!(winansi("Café – 10 €"), b"Caf\xe9 \x96 10 \x80");
        assert_eq!(winansi("A → B"), b"A -> B");
        assert_eq!(winansi("日本\u{0007}"), b"???");
        assert_eq!(winansi("soft\u{00AD}hyphen"), b"soft\xadhyphen");
    }

    #[test]
    fn long_descriptions_wrap_inside_their_column() {
        let long = "word ".repeat(40) + &"x".repeat(120);
        let lines = wrap(&long, Font::Regular, BODY, DESCRIPTION_WIDTH);
        assert!(lines.len() > 2);
        for line in &lines {
            assert!(Font::Regular.width(&winansi(line), BODY) <= DESCRIPTION_WIDTH, "{line}");
        }
        assert_eq!(lines.concat().replace(' ', ""), long.replace(' ', ""));
    }
}
