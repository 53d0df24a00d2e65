//! A Java agent jar that makes Jersey's system-property configuration reliable.
//!
//! Jersey copies the system properties into a client's configuration
//! (`jersey.config.allowSystemPropertiesProvider`) through one shared map that the first caller
//! fills while later callers read it (`SystemPropertiesConfigurationModel.getProperties`, Jersey
//! 3.0.8 and 2.x): a client initialised at the same moment as another gets the map empty or
//! half-filled and so no proxy. The OCI Java SDK does exactly that at start-up: its session-token
//! provider refreshes the session on its own thread while the program builds its first client.
//! Measured with the SDK program of `tests/sdk/java`: 4 runs in 37 sent the program's client
//! around the proxy. The agent fills the map once, before `main`, so every client sees it
//! (40 runs in 40 through the proxy).
//!
//! Its one class, `woci.JerseyWarmup`, is assembled here (class file version 49, so the JVM's
//! type-inferring verifier needs no stack map frames) and is, in Java:
//!
//! ```java
//! package woci;
//! public class JerseyWarmup {
//!     public static void premain(String args) {
//!         try {
//!             java.lang.reflect.Method m = Class
//!                 .forName("org.glassfish.jersey.internal.config.ExternalPropertiesConfigurationFactory")
//!                 .getDeclaredMethod("readExternalPropertiesMap", new Class[0]);
//!             m.setAccessible(true);
//!             m.invoke(null, new Object[0]);
//!         } catch (Throwable ignored) {
//!             // No Jersey on the class path (or another one): nothing to warm up.
//!         }
//!     }
//! }
//! ```
//!
//! The jar stores (without compression) its manifest and that class.

/// The agent's class, as `Premain-Class` names it.
const CLASS: &str = "woci.JerseyWarmup";

/// The agent jar.
pub(super) fn jar() -> Vec<u8> {
    let manifest = format!("Manifest-Version: 1.0\r\nPremain-Class: {CLASS}\r\n\r\n");
    zip(&[
        ("META-INF/MANIFEST.MF", manifest.as_bytes()),
        (&format!("{}.class", CLASS.replace('.', "/")), &class_file()),
    ])
}

/// A class file's constant pool under construction.
#[derive(Default)]
struct ConstantPool {
    bytes: Vec<u8>,
    count: u16,
}

impl ConstantPool {
    /// An entry: its tag, then its two-byte indexes.
    fn push(&mut self, tag: u8, indexes: &[u16]) -> u16 {
        self.bytes.push(tag);
        self.bytes.extend(be16(indexes));
        self.count += 1;
        self.count
    }

    fn utf8(&mut self, s: &str) -> u16 {
        let index = self.push(1, &[s.len() as u16]);
        self.bytes.extend_from_slice(s.as_bytes());
        index
    }

    fn class(&mut self, internal_name: &str) -> u16 {
        let name = self.utf8(internal_name);
        self.push(7, &[name])
    }

    fn string(&mut self, s: &str) -> u16 {
        let value = self.utf8(s);
        self.push(8, &[value])
    }

    fn method(&mut self, class: u16, name: &str, descriptor: &str) -> u16 {
        let (name, descriptor) = (self.utf8(name), self.utf8(descriptor));
        let name_and_type = self.push(12, &[name, descriptor]);
        self.push(10, &[class, name_and_type])
    }
}

/// The values, two bytes each, big-endian (class files).
fn be16(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// The values, little-endian (zip).
fn le16(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn le32(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `woci/JerseyWarmup.class` (see the module documentation for its Java source).
fn class_file() -> Vec<u8> {
    const LDC: u8 = 0x12;
    const INVOKESTATIC: u8 = 0xb8;
    const INVOKEVIRTUAL: u8 = 0xb6;
    const ANEWARRAY: u8 = 0xbd;
    const ICONST_0: u8 = 0x03;
    const ICONST_1: u8 = 0x04;
    const ACONST_NULL: u8 = 0x01;
    const DUP: u8 = 0x59;
    const POP: u8 = 0x57;
    const RETURN: u8 = 0xb1;

    let mut cp = ConstantPool::default();
    let this = cp.class(&CLASS.replace('.', "/"));
    let object = cp.class("java/lang/Object");
    let class = cp.class("java/lang/Class");
    let method = cp.class("java/lang/reflect/Method");
    let factory = cp.string("org.glassfish.jersey.internal.config.ExternalPropertiesConfigurationFactory");
    let read = cp.string("readExternalPropertiesMap");
    let for_name = cp.method(class, "forName", "(Ljava/lang/String;)Ljava/lang/Class;");
    let get_declared =
        cp.method(class, "getDeclaredMethod", "(Ljava/lang/String;[Ljava/lang/Class;)Ljava/lang/reflect/Method;");
    let set_accessible = cp.method(method, "setAccessible", "(Z)V");
    let invoke = cp.method(method, "invoke", "(Ljava/lang/Object;[Ljava/lang/Object;)Ljava/lang/Object;");
    let premain = cp.utf8("premain");
    let premain_descriptor = cp.utf8("(Ljava/lang/String;)V");
    let code_name = cp.utf8("Code");
    // `ldc` takes a one-byte index: the pool is small.
    let ldc = |i: u16| vec![LDC, u8::try_from(i).expect("a small constant pool")];
    let with_index = |opcode: u8, i: u16| [vec![opcode], be16(&[i])].concat();
    let code: Vec<u8> = [
        ldc(factory),                              // 0
        with_index(INVOKESTATIC, for_name),        // 2
        ldc(read),                                 // 5
        vec![ICONST_0],                            // 7
        with_index(ANEWARRAY, class),              // 8
        with_index(INVOKEVIRTUAL, get_declared),   // 11
        vec![DUP, ICONST_1],                       // 14
        with_index(INVOKEVIRTUAL, set_accessible), // 16
        vec![ACONST_NULL, ICONST_0],               // 19
        with_index(ANEWARRAY, object),             // 21
        with_index(INVOKEVIRTUAL, invoke),         // 24
        vec![POP, RETURN],                         // 27
        vec![POP, RETURN],                         // 29: the handler drops the Throwable
    ]
    .concat();
    const HANDLER: u16 = 29;

    let attribute = [
        // max_stack, max_locals (the argument), the code
        be16(&[3, 1]),
        (code.len() as u32).to_be_bytes().to_vec(),
        code,
        // one exception handler: [0, 28) → 29, any Throwable; no attributes
        be16(&[1, 0, HANDLER - 1, HANDLER, 0, 0]),
    ]
    .concat();
    [
        vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 49],
        be16(&[cp.count + 1]),
        cp.bytes,
        // public super, this, super, no interfaces, no fields, one method:
        // public static premain(String), one attribute: Code
        be16(&[0x0021, this, object, 0, 0, 1, 0x0009, premain, premain_descriptor, 1, code_name]),
        (attribute.len() as u32).to_be_bytes().to_vec(),
        attribute,
        be16(&[0]), // no class attributes
    ]
    .concat()
}

/// A zip archive of `(name, content)` files, stored without compression.
fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    // 1980-01-01 00:00, the earliest date a zip can hold: the jar does not depend on the clock.
    const DATE: u16 = (1 << 5) | 1;
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, content) in files {
        let (offset, size) = (out.len() as u32, content.len() as u32);
        // version needed 1.0, no flags, stored, time, date; CRC, sizes; name length, no extra field
        let common = [le16(&[10, 0, 0, 0, DATE]), le32(&[crc32(content), size, size]), le16(&[name.len() as u16, 0])];
        out.extend([le32(&[0x0403_4b50]), common.concat(), name.as_bytes().to_vec(), content.to_vec()].concat());
        // made by: version 2.0; no comment, disk 0, no internal attributes; no external ones
        let entry = [le32(&[0x0201_4b50]), le16(&[20]), common.concat(), le16(&[0, 0, 0]), le32(&[0, offset])];
        central.extend([entry.concat(), name.as_bytes().to_vec()].concat());
    }
    let count = files.len() as u16;
    let end = [le32(&[0x0605_4b50]), le16(&[0, 0, count, count]), le32(&[central.len() as u32, out.len() as u32])];
    // no comment
    [out, central, end.concat(), le16(&[0])].concat()
}

/// CRC-32 (IEEE 802.3), as zip needs it.
fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, b| {
        (0..8).fold(crc ^ u32::from(*b), |c, _| if c & 1 == 1 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// The `(name, content)` entries of a stored zip, read through its central directory.
    fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
        let u16_at = |i: usize| u16::from_le_bytes([zip[i], zip[i + 1]]) as usize;
        let u32_at = |i: usize| u32::from_le_bytes(zip[i..i + 4].try_into().unwrap()) as usize;
        let end = zip.len() - 22;
        assert_eq!(u32_at(end), 0x0605_4b50);
        let (count, mut at) = (u16_at(end + 10), u32_at(end + 16));
        let mut out = Vec::new();
        for _ in 0..count {
            assert_eq!(u32_at(at), 0x0201_4b50);
            let (crc, size, name_len, local) = (u32_at(at + 16), u32_at(at + 24), u16_at(at + 28), u32_at(at + 42));
            let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).unwrap();
            assert_eq!(u32_at(local), 0x0403_4b50);
            assert_eq!(u16_at(local + 8), 0, "stored");
            let data = zip[local + 30 + name_len..local + 30 + name_len + size].to_vec();
            assert_eq!(crc32(&data) as usize, crc);
            out.push((name, data));
            at += 46 + name_len;
        }
        out
    }

    #[test]
    fn the_jar_holds_the_manifest_first_then_the_class() {
        let files = entries(&jar());
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "META-INF/MANIFEST.MF");
        let manifest = String::from_utf8(files[0].1.clone()).unwrap();
        assert!(manifest.contains("Premain-Class: woci.JerseyWarmup\r\n") && manifest.ends_with("\r\n\r\n"));
        assert_eq!((files[1].0.as_str(), files[1].1.as_slice()), ("woci/JerseyWarmup.class", class_file().as_slice()));
        assert_eq!(jar(), jar(), "the same bytes every time");
    }

    #[test]
    fn the_class_file_is_version_49_with_the_documented_code() {
        let class = class_file();
        assert_eq!(class[..8], [0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 49]);
        let text = String::from_utf8_lossy(&class);
        for s in ["woci/JerseyWarmup", "ExternalPropertiesConfigurationFactory", "readExternalPropertiesMap", "premain"]
        {
            assert!(text.contains(s), "{s}");
        }
        // The Code attribute: max_stack 3, max_locals 1, 31 bytes of code, one handler [0, 28) → 29
        // for any Throwable, no attributes; then no class attributes.
        let tail = &class[class.len() - 2 - 2 - 8 - 2 - 31 - 4 - 4..];
        assert_eq!(tail[..8], [0, 3, 0, 1, 0, 0, 0, 31]);
        assert_eq!(tail[8 + 31..], [0, 1, 0, 0, 0, 28, 0, 29, 0, 0, 0, 0, 0, 0]);
    }
}
