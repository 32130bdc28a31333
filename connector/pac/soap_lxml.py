"""The lxml template path: a SOAP operation sent and read without zeep (issue 14).

Why: an invoice costs two SOAP calls (FEL ``TimbrarCFDI`` and ``ObtenerAcuseEnvio``), and
zeep's general machinery — serializing the request through its XSD objects, parsing the reply
into them — was measured at about 0.6 ms of CPU per invoice in the daemon, 0.6–0.7 ms that
this path saves (BENCHMARKS.md, "The lxml template path for FEL's two calls"). For the operations a driver names here, this module replaces zeep
entirely; zeep still does every other operation. There is ONE path per operation, chosen when
the service is built (:class:`~connector.pac.soap.SoapService` ``lxml_operations``), never
both for the same call.

What stays the same as zeep's path, by construction:

* the contract is the shipped WSDL: element names, namespaces, order and ``SOAPAction`` are
  read from zeep's parse of it once, when the service is built (not written by hand), and
  ``tests/pac/test_soap_lxml.py`` validates the request against the WSDL's own schema and
  the real sandbox's replies against it;
* the wire: the same ``requests.Session``, proxy, CA bundle, timeouts, no redirects
  (:meth:`_QuietTransport.post <connector.pac.soap._QuietTransport.post>`), the same headers
  (``SOAPAction: "<action>"``, ``Content-Type: text/xml; charset=utf-8``);
* the failures: a reply is judged as zeep's SOAP 1.1 binding judges it and raises the same
  exception types (zeep's ``TransportError`` and ``Fault``, lxml's errors), so
  :func:`~connector.pac.failures.classify_exception` maps both paths alike; the retries
  (tenacity, in ``resilience``) sit above and do not know which path ran.

Request: a prebuilt lxml envelope (``Envelope/Body/<op>/<param>…``) is copied per call and
the values set as element text (lxml escapes them and refuses characters XML cannot carry:
``ValueError`` before anything is sent); a parameter given as None is left out (the WSDL's
``minOccurs=0``), an unknown one is a ``TypeError``, as with zeep.

Reply: parsed with lxml (no network, no entities, comments dropped, a DOCTYPE refused, the
same recovery zeep's non-strict settings allow). The result element is read into a plain
dict, one key per element of its complex type in WSDL order (absent or ``xsi:nil`` → None):
``xs:string`` as text, ``xs:int``/``long``/``short``/``integer`` as ``int``, ``xs:boolean``
as ``bool``, a nested complex type as a nested dict, any other simple type as its text (e.g.
``Timbre.FechaTimbrado``: the drivers read dates from the TimbreFiscalDigital itself). A
type this cannot read (repeated elements, attributes, deeper nesting) is refused when the
service is built, so an operation is templated only when its reply fits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree
from zeep.exceptions import Fault, TransportError

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
_BODY = f"{{{SOAP_ENV}}}Body"
_FAULT = f"{{{SOAP_ENV}}}Fault"
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_XSD = "http://www.w3.org/2001/XMLSchema"

# zeep's parser with the connector's settings (strict=False → recover, forbid_dtd, no network)
_REPLY_PARSER = etree.XMLParser(
    remove_comments=True,
    resolve_entities=False,
    recover=True,
    huge_tree=False,
    no_network=True,
    load_dtd=False,
)


def _boolean(text: str) -> bool:
    return text.strip() in ("true", "1")


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "long": int,
    "short": int,
    "integer": int,
    "boolean": _boolean,
}

# How to read a complex type: {child tag: (key, converter | nested reading | None for text)}
Reading = dict[str, tuple[str, Any]]


def _reading(xsd_type: Any, depth: int = 0) -> Reading:
    """How to read ``xsd_type`` (a zeep complex type) into a dict; ValueError when the type
    is not plain (attributes, repeated or untyped elements, more than two levels)."""
    from zeep.xsd.types.builtins import BuiltinType
    from zeep.xsd.types.complex import ComplexType

    if depth > 2 or not isinstance(xsd_type, ComplexType) or xsd_type.attributes:
        raise ValueError(f"tipo no plano: {xsd_type!r}")
    out: Reading = {}
    for name, el in xsd_type.elements:
        qname = getattr(el, "qname", None)
        if qname is None or getattr(el, "max_occurs", 1) != 1:
            raise ValueError(f"elemento no plano: {name}")
        if isinstance(el.type, BuiltinType):
            local = etree.QName(el.type.qname).localname if el.type.qname else "string"
            out[str(qname)] = (name, _CONVERTERS.get(local))
        else:
            out[str(qname)] = (name, _reading(el.type, depth + 1))
    return out


def _child(node: Any, tag: str) -> Any:
    """The first child of ``node`` named ``tag`` (a loop: ``find`` parses its path per call)."""
    for child in node:
        if child.tag == tag:
            return child
    return None


def _nil(node: Any) -> bool:
    return node.get(_XSI_NIL) in ("true", "1")


def _read(node: Any, reading: Reading) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(name for name, _ in reading.values())
    for child in node:
        entry = reading.get(child.tag)  # comments are gone; a PI's tag is no key either
        if entry is None:
            continue
        name, conv = entry
        if isinstance(conv, dict):
            if not _nil(child):
                out[name] = _read(child, conv)
            continue
        text = child.text
        if text is None or (not text.strip() and _nil(child)):
            continue  # absent, empty or xsi:nil: None
        if conv is None:
            out[name] = text
        else:
            try:
                out[name] = conv(text)
            except (TypeError, ValueError):  # as zeep: an unreadable simple value is None
                out[name] = None
    return out


@dataclass(frozen=True)
class LxmlOperation:
    """One document/literal SOAP 1.1 operation: its request template and its reply reading."""

    name: str
    headers: Mapping[str, str]
    template: Any  # the lxml Envelope, copied per call
    params: Mapping[str, int]  # parameter → index of its element in the request element
    response_tag: str
    result_tag: str
    reading: Reading

    def envelope(self, values: Mapping[str, Any]) -> bytes:
        """The request's bytes for ``values`` (the WSDL's parameter names)."""
        unknown = set(values) - set(self.params)
        if unknown:
            raise TypeError(f"{self.name}() got unexpected arguments {sorted(unknown)}")
        env = copy.deepcopy(self.template)
        request = env[0][0]
        children = list(request)
        for key, index in self.params.items():
            value = values.get(key)
            if value is None:
                request.remove(children[index])  # minOccurs=0: left out, as zeep does
            elif isinstance(value, str):
                children[index].text = value  # ValueError for characters XML cannot carry
            else:
                raise TypeError(f"{self.name}: '{key}' debe ser texto")
        return etree.tostring(env, xml_declaration=True, encoding="utf-8")

    def reply(self, status: int, content: bytes) -> dict[str, Any] | None:
        """The result of a reply, judged as zeep's SOAP 1.1 binding judges it: no content
        under 201/202 is None, under any other non-200 a ``TransportError``; XML that cannot
        be read a ``TransportError`` with the status; a non-200 or a SOAP Fault a ``Fault``;
        no SOAP Envelope an ``XMLSyntaxError``; no result element None."""
        if status in (201, 202) and not content:
            return None
        if status != 200 and not content:
            raise TransportError(
                f"Server returned HTTP status {status} (no content available)",
                status_code=status,
            )
        try:
            root = etree.fromstring(content, _REPLY_PARSER)
        except etree.XMLSyntaxError as exc:
            raise TransportError(
                f"Server returned response ({status}) with invalid XML: {exc}.",
                status_code=status,
            ) from None
        if root is None:  # nothing the parser could recover
            raise TransportError(
                f"Server returned response ({status}) with invalid XML.", status_code=status
            )
        if root.getroottree().docinfo.doctype:
            raise ValueError("la respuesta trae DOCTYPE (no se admite)")
        body = _child(root, _BODY)
        fault = _child(body, _FAULT) if body is not None else None
        if status != 200 or fault is not None:
            if fault is None:
                raise Fault(message="Unknown fault occured", code=None)
            raise Fault(
                message=fault.findtext("faultstring"),
                code=fault.findtext("faultcode"),
                actor=fault.findtext("faultactor"),
            )
        if root.tag != _ENVELOPE:
            raise etree.XMLSyntaxError(f"no SOAP Envelope: {root.tag}", 0, 0, 0)
        if body is None or len(body) == 0 or body[0].tag != self.response_tag:
            return None
        result = _child(body[0], self.result_tag)
        if result is None or _nil(result):
            return None
        return _read(result, self.reading)


def lxml_operation(binding: Any, operation: str) -> LxmlOperation:
    """The :class:`LxmlOperation` for ``operation`` of a zeep SOAP 1.1 binding (the WSDL as
    zeep parsed it); ValueError when the operation does not fit: not document/literal,
    request parameters that are not plain strings, SOAP headers, or a reply that is not one
    plain result element."""
    from zeep.wsdl.bindings.soap import Soap11Binding
    from zeep.xsd.types.builtins import String

    if not isinstance(binding, Soap11Binding):
        raise ValueError(f"{operation}: solo SOAP 1.1")
    op = binding._operations[operation]
    if op.style != "document" or op.input is None or op.output is None:
        raise ValueError(f"{operation}: solo document/literal con respuesta")
    if op.input.header.type.elements or op.output.header.type.elements:
        raise ValueError(f"{operation}: encabezados SOAP no previstos")
    request_el, response_el = op.input.body, op.output.body
    env = etree.Element(_ENVELOPE, nsmap={"soap-env": SOAP_ENV})
    body = etree.SubElement(env, _BODY)
    namespace = etree.QName(request_el.qname).namespace
    request = etree.SubElement(body, str(request_el.qname), nsmap={"ns0": namespace})
    params: dict[str, int] = {}
    for index, (name, el) in enumerate(request_el.type.elements):
        if not isinstance(el.type, String) or el.max_occurs != 1 or el.min_occurs != 0:
            raise ValueError(f"{operation}: el parámetro {name} no es texto opcional")
        etree.SubElement(request, str(el.qname))
        params[name] = index
    outputs = response_el.type.elements
    if len(outputs) != 1:
        raise ValueError(f"{operation}: la respuesta no es un solo elemento")
    result_el = outputs[0][1]
    return LxmlOperation(
        name=operation,
        headers={
            "SOAPAction": f'"{op.soapaction}"',
            "Content-Type": "text/xml; charset=utf-8",
        },
        template=env,
        params=params,
        response_tag=str(response_el.qname),
        result_tag=str(result_el.qname),
        reading=_reading(result_el.type),
    )
