"""Sans-IO XML stream layer: bytes in, events out; elements in, bytes out."""

from casper.xml.events import NEED_DATA as NEED_DATA
from casper.xml.events import Event as Event
from casper.xml.events import NeedData as NeedData
from casper.xml.events import StanzaReceived as StanzaReceived
from casper.xml.events import StreamClosed as StreamClosed
from casper.xml.events import StreamOpened as StreamOpened
from casper.xml.parser import XMLStreamParser as XMLStreamParser
from casper.xml.serializer import STREAM_CLOSE as STREAM_CLOSE
from casper.xml.serializer import STREAM_NS as STREAM_NS
from casper.xml.serializer import XML_NS as XML_NS
from casper.xml.serializer import escape_attr as escape_attr
from casper.xml.serializer import escape_text as escape_text
from casper.xml.serializer import serialize as serialize
from casper.xml.serializer import stream_error as stream_error
from casper.xml.serializer import stream_error_of as stream_error_of
from casper.xml.serializer import stream_header as stream_header
