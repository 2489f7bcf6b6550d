import io

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from smartpay import jsonsafe
from smartpay.api.errors import CardDataNotAllowed
from smartpay.carddata import find_card_data


class StrictJSONParser(JSONParser):
    """JSON bodies must be objects, and must never carry a card number in any string."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            jsonsafe.check_depth(raw)
        except jsonsafe.JSONTooDeep as exc:
            raise ParseError(f"JSON parse error - {exc}.") from None
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        if not isinstance(data, dict):
            raise ParseError("The request body must be a JSON object.")
        where = find_card_data(data)
        if where:
            raise CardDataNotAllowed(
                f"'{where}' looks like a card number. Send a gateway token instead; "
                "SmartPay never accepts raw card data.",
                field=where,
            )
        return data
