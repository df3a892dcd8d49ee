"""Content Credentials (C2PA) in every labelled mp4: a signed manifest saying that edge-retalk made the
video with a trained model, written and validated through the official `c2pa-python` library.

The operator's key signs (`--sign-cert` and `--sign-key`, or the `[signing]` table of
$EDGE_RETALK_CONFIG/config.toml, default ~/.config/edge-retalk); without one, a self-signed TEST
certificate made on first use and kept in that folder signs, and `inspect` says so. Nothing is fetched
from the network: no timestamp authority, no OCSP, no remote manifests.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import c2pa
import numpy as np
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import __version__
from ..errors import EdgeRetalkError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

log = logging.getLogger(__name__)

TEST_ORGANISATION = "edge-retalk TEST certificate, not for production"
TEST_KEY_FILE = "test-signing-key.pem"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
EXPECTED_WITHOUT_TRUST_LIST = "signingCredential.untrusted"
OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


def config_dir() -> Path:
    """$EDGE_RETALK_CONFIG, else $XDG_CONFIG_HOME/edge-retalk, else ~/.config/edge-retalk."""
    if os.environ.get("EDGE_RETALK_CONFIG"):
        return Path(os.environ["EDGE_RETALK_CONFIG"])
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "edge-retalk"


@dataclass(frozen=True)
class SigningKey:
    """A certificate chain (PEM, the signer's certificate first) and its private key (PEM)."""

    chain: bytes
    private_key: bytes
    algorithm: c2pa.C2paSigningAlg
    source: str

    @property
    def is_test(self) -> bool:
        return self.source == "test"


def _algorithm(key, where: str) -> c2pa.C2paSigningAlg:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": c2pa.C2paSigningAlg.ES256, "secp384r1": c2pa.C2paSigningAlg.ES384,
                    "secp521r1": c2pa.C2paSigningAlg.ES512}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return c2pa.C2paSigningAlg.PS256
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    raise EdgeRetalkError(f"{where}: C2PA signs with EC P-256/P-384/P-521, RSA or Ed25519 keys only")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EdgeRetalkError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def load_signing_key(cert: Path, key: Path) -> SigningKey:
    """The operator's certificate chain and key, checked to belong together and to sign a sample."""
    chain, private = _read(cert, "signing certificate"), _read(key, "signing key")
    try:
        certificates = x509.load_pem_x509_certificates(chain)
    except ValueError:
        raise EdgeRetalkError(f"{cert}: not a PEM certificate chain") from None
    try:
        loaded = serialization.load_pem_private_key(private, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EdgeRetalkError(f"{key}: not an unencrypted PEM private key") from None
    if certificates[0].public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo) != \
            loaded.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise EdgeRetalkError(f"{key}: this key does not belong to the first certificate in {cert}")
    signing_key = SigningKey(chain, private, _algorithm(loaded, str(key)), str(cert))
    _check_signs(signing_key)
    return signing_key


def _check_signs(signing_key: SigningKey) -> None:
    """Sign a one-frame video in memory, so that a certificate C2PA refuses fails before a run, not after."""
    sample = io.BytesIO()
    with av.open(sample, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(1))
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="bgr24")))
        container.mux(stream.encode(None))
    sample.seek(0)
    try:
        _builder("check").sign(_signer(signing_key), "video/mp4", sample, io.BytesIO())
    except c2pa.C2paError as exc:
        raise EdgeRetalkError(f"{signing_key.source}: C2PA will not sign with this certificate ({exc})") from None


def operator_signing_key(cert: Path | None = None, key: Path | None = None) -> SigningKey | None:
    """The operator's key: `cert` and `key` when given, else the config file's, else None."""
    if (cert is None) != (key is None):
        raise EdgeRetalkError("--sign-cert and --sign-key go together")
    if cert is not None and key is not None:
        return load_signing_key(cert, key)
    config = config_dir() / "config.toml"
    if config.is_file():
        try:
            signing = tomllib.loads(config.read_text()).get("signing", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise EdgeRetalkError(f"{config}: not valid TOML ({exc})") from None
        if signing:
            if not (isinstance(signing, dict) and isinstance(signing.get("cert"), str)
                    and isinstance(signing.get("key"), str)):
                raise EdgeRetalkError(f"{config}: [signing] needs cert and key, the paths of two PEM files")
            return load_signing_key(*(config.parent / Path(signing[name]).expanduser() for name in ("cert", "key")))
    return None


def configured_signing_key() -> SigningKey:
    """The key that signs: the operator's (config file), else the self-signed test key."""
    return operator_signing_key() or self_signed_test_key()


def self_signed_test_key() -> SigningKey:
    """The self-signed TEST key, made on first use (and said, once, as a warning): a test root and
    a signer certificate it issued."""
    path = config_dir() / TEST_KEY_FILE
    if not path.is_file():
        _write_test_key(path)
        log.warning(f"made a self-signed TEST key for Content Credentials in {path}; sign with your own "
                    "through --sign-cert/--sign-key or the [signing] table of the config file")
    try:
        pem = path.read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        certificates = x509.load_pem_x509_certificates(pem)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
        raise EdgeRetalkError(f"{path}: the test signing key is damaged; remove it and a new one is made") from None
    return SigningKey(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates),
                      key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
                      c2pa.C2paSigningAlg.ES256, "test")


def new_certificate_chain(organisation: str) -> tuple[bytes, bytes]:
    """(private key, chain) as PEM: a new EC P-256 signer certificate issued by a new root, with the
    extensions C2PA asks of a signer (key usage, e-mail protection, key identifiers)."""
    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])

    def usage(signer: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=signer, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not signer,
                             crl_sign=not signer, encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.timezone.utc)
    root_key, signer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    valid = dict(not_valid_before=now - datetime.timedelta(days=1), not_valid_after=now + datetime.timedelta(days=3650))
    root = (x509.CertificateBuilder(subject_name=name(f"{organisation} root"), issuer_name=name(f"{organisation} root"),
                                    public_key=root_key.public_key(), serial_number=x509.random_serial_number(), **valid)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage(signer=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    signer = (x509.CertificateBuilder(subject_name=name(f"{organisation} signer"), issuer_name=root.subject,
                                      public_key=signer_key.public_key(), serial_number=x509.random_serial_number(),
                                      **valid)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(usage(signer=True), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
              .sign(root_key, hashes.SHA256()))
    key_pem = signer_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    return key_pem, signer.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)


def _write_test_key(path: Path) -> None:
    """One file (key, signer certificate, root certificate), written atomically and readable by its owner only."""
    pem = b"".join(new_certificate_chain(TEST_ORGANISATION))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".test-key.", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.replace(tmp, path)
    except OSError as exc:
        raise EdgeRetalkError(f"{path}: cannot keep the test signing key ({exc.strerror}); "
                              "set EDGE_RETALK_CONFIG to a writable folder or give --sign-cert/--sign-key") from None


def _signer(signing_key: SigningKey) -> c2pa.Signer:
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(signing_key.algorithm, signing_key.chain,
                                                     signing_key.private_key, None))


def _builder(generator: str) -> c2pa.Builder:
    return c2pa.Builder({
        "claim_generator_info": [{"name": "edge-retalk", "version": __version__}],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
            "action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": {"name": "edge-retalk", "version": __version__},
            "description": f"lip-synced by edge-retalk {__version__} (generator {generator})"}]}}],
    })


def sign_video(source: Path, destination: Path, signing_key: SigningKey, generator: str) -> None:
    """Write `source` to `destination` with a signed manifest embedded."""
    try:
        with open(source, "rb") as src, open(destination, "wb") as dst:
            _builder(generator).sign(_signer(signing_key), "video/mp4", src, dst)
    except c2pa.C2paError as exc:
        raise EdgeRetalkError(f"{destination}: cannot add Content Credentials ({exc})") from None


@dataclass(frozen=True)
class Credentials:
    """What a file's Content Credentials say: none, valid or invalid (and why), who signed, what was done."""

    state: str
    signer: str | None = None
    test_certificate: bool = False
    actions: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"state": self.state, "signer": self.signer, "test_certificate": self.test_certificate,
                "actions": list(self.actions), "problems": list(self.problems)}


def read_credentials(path: Path) -> Credentials:
    """Validate the manifest embedded in a file (offline; no trust list, so the signer is named, not vouched for)."""
    try:
        reader = c2pa.Reader.try_create(str(path), context=c2pa.Context.from_dict(OFFLINE))
    except c2pa.C2paError.NotSupported:
        return Credentials("none")
    except c2pa.C2paError as exc:
        return Credentials("invalid", problems=(str(exc),))
    if reader is None:
        return Credentials("none")
    with reader:
        store = json.loads(reader.json())
        results = reader.get_validation_results() or {}
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    signature = manifest.get("signature_info", {})
    failures = tuple(f"{item.get('code')}: {item.get('explanation', '')}".strip(": ")
                     for item in results.get("activeManifest", {}).get("failure", [])
                     if item.get("code") != EXPECTED_WITHOUT_TRUST_LIST)
    actions = tuple(f"{action.get('action')} ({action.get('digitalSourceType', '').rsplit('/', 1)[-1]})"
                    for assertion in manifest.get("assertions", []) if assertion.get("label", "").startswith("c2pa.actions")
                    for action in assertion.get("data", {}).get("actions", []))
    issuer = signature.get("issuer")
    return Credentials("invalid" if failures else "valid", ", ".join(filter(None, (signature.get("common_name"), issuer))),
                       issuer == TEST_ORGANISATION, actions, failures)
