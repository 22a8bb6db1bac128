"""VOSI capabilities and availability documents (`docs/platform-api.md` §1, §9).

The sessions capability uses standardID `http://www.opencadc.org/std/platform#session-1` (v1), or
`vos://cadc.nrc.ca~vospace/CADC/std/Proc#sessions-1.0` in legacy mode (v0), which is how clients
such as `canfar` (`utils/vosi.py`) tell the API eras apart.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

SESSION_V1 = "http://www.opencadc.org/std/platform#session-1"
SESSION_V0 = "vos://cadc.nrc.ca~vospace/CADC/std/Proc#sessions-1.0"
VOSPACE_NODES = "ivo://ivoa.net/std/VOSpace/v2.0#nodes"
TOKEN_METHOD = "ivo://ivoa.net/sso#token"


def _capability(std_id: str, url: str, use: str, secured: bool) -> str:
    security = f'\n      <securityMethod standardID="{TOKEN_METHOD}"/>' if secured else ""
    return (
        f'  <capability standardID="{escape(std_id)}">\n'
        '    <interface xsi:type="vs:ParamHTTP" role="std">\n'
        f'      <accessURL use="{use}">{escape(url)}</accessURL>{security}\n'
        "    </interface>\n"
        "  </capability>\n"
    )


def _document(service_url: str, extra: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
        'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        + _capability(
            "ivo://ivoa.net/std/VOSI#capabilities", f"{service_url}/capabilities", "full", False
        )
        + _capability(
            "ivo://ivoa.net/std/VOSI#availability", f"{service_url}/availability", "full", False
        )
        + extra
        + "</vosi:capabilities>\n"
    )


def skaha_capabilities(skaha_url: str, *, legacy: bool) -> str:
    """Skaha's capabilities: the sessions endpoint of the era being simulated."""
    if legacy:
        sessions = _capability(SESSION_V0, f"{skaha_url}/v0", "base", True)
    else:
        sessions = _capability(SESSION_V1, f"{skaha_url}/v1", "base", True)
    return _document(skaha_url, sessions)


def cavern_capabilities(arc_url: str) -> str:
    """Cavern's capabilities: the VOSpace nodes endpoint."""
    return _document(arc_url, _capability(VOSPACE_NODES, f"{arc_url}/nodes", "base", True))


def availability(note: str) -> str:
    """A VOSI availability document saying the service is up."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">\n'
        "  <vosi:available>true</vosi:available>\n"
        f"  <vosi:note>{escape(note)}</vosi:note>\n"
        "</vosi:availability>\n"
    )
