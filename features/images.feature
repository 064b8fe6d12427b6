@images @dgx
Feature: Inline images
  Images reach the model only as base64 data URIs "data:image/<jpeg|png|webp|gif>;base64,<data>",
  checked before anything is forwarded (SPEC §3 catalog, seed 000 "image_*"). An http(s):// URL is
  image_url_not_supported unless the model's constraints.accepts_image_url is true; a malformed
  data URI, a missing or unsupported MIME type, or decoded bytes that are not a valid image of the
  declared type is image_decode_error; a payload that is not [A-Za-z0-9+/]+={0,2} with valid padding
  is image_base64_invalid. All three point "param" at the offending URL, e.g.
  "/messages/0/content/1/image_url/url". The samples below are real 1x1 images.

  Background:
    Given I authenticate with the "primary" token
    And I use the "default" model

  Scenario Outline: A valid inline <format> image is accepted
    Given the user message carries the image URL "<url>"
    When I send a chat request
    Then the response status is 200
    And the body matches the schema "chat_completion.json"

    Examples:
      | format | url |
      | PNG    | data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | GIF    | data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7 |
      | JPEG   | data:image/jpeg;base64,/9j/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQH/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAAAP/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AP//Z |
      | WEBP   | data:image/webp;base64,UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA== |

  @needs-mock
  # Size alone is no reason to refuse an image that fits MAX_BODY_BYTES (1 MiB here): a real
  # photo is hundreds of KiB of base64, longer than any decoder reads in one piece.
  Scenario: A valid inline image of several hundred KiB is accepted
    Given the user message carries a PNG data URI of 400 KiB
    When I send a chat request
    Then the response status is 200

  Scenario: A valid inline image is forwarded to the upstream unchanged
    Given the user message carries the image URL "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
    When I send a chat request
    Then the response status is 200
    And the last upstream request contains the text "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="

  Scenario Outline: A malformed data URI is image_decode_error (<case>)
    Given the user message carries the image URL "<url>"
    When I send a chat request
    Then the response is the error "image_decode_error"
    And the error param is "/messages/0/content/1/image_url/url"

    Examples:
      | case                        | url |
      | unsupported MIME bmp        | data:image/bmp;base64,Qk0= |
      | unsupported MIME svg        | data:image/svg+xml;base64,PHN2Zy8+ |
      | not an image MIME           | data:text/plain;base64,aGVsbG8gd29ybGQ= |
      | no MIME                     | data:;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | no base64 marker            | data:image/png,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | no data scheme              | image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | PNG bytes declared as JPEG  | data:image/jpeg;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | GIF bytes declared as WEBP  | data:image/webp;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7 |
      | text bytes declared as PNG  | data:image/png;base64,aGVsbG8gd29ybGQ= |
      | PNG truncated to signature  | data:image/png;base64,iVBORw0KGgo= |
      | JPEG truncated to SOI       | data:image/jpeg;base64,/9j/ |

  # A PNG's IHDR width and height must be at least 1 ("Zero is an invalid value", PNG
  # specification 11.2.2 IHDR): bytes declaring a zero dimension are not a valid PNG (SPEC §3
  # image_decode_error), even with every chunk and CRC in order, as in these two samples.
  # Either dimension alone must be enough to refuse it.
  @needs-mock
  Scenario Outline: A PNG with a zero dimension is image_decode_error (<case>)
    Given the user message carries the image URL "<url>"
    When I send a chat request
    Then the response is the error "image_decode_error"
    And the error param is "/messages/0/content/1/image_url/url"
    And the upstream received 0 requests

    Examples:
      | case              | url |
      | width 0, height 1 | data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAAAAAABCAAAAADVvPBrAAAACUlEQVR4nGMAAAABAAFe/335AAAAAElFTkSuQmCC |
      | width 1, height 0 | data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAACAAAAADxIkjwAAAACElEQVR4nAMAAAAAAUgGidIAAAAASUVORK5CYII= |

  Scenario Outline: A payload that is not valid base64 is image_base64_invalid (<case>)
    Given the user message carries the image URL "<url>"
    When I send a chat request
    Then the response is the error "image_base64_invalid"
    And the error param is "/messages/0/content/1/image_url/url"

    Examples:
      | case                        | url |
      | not base64 at all           | data:image/png;base64,!!!!**** |
      | padding in the middle       | data:image/png;base64,abc=d |
      | three padding characters    | data:image/png;base64,iVBORw0KGgo=== |
      | wrong length for padding    | data:image/png;base64,iVBORw0KGgo== |
      | URL-safe alphabet           | data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK-kcQAAAABJRU5ErkJggg== |
      | space inside                | data:image/png;base64,iVBORw0KGgoAAAANSUhEUg AAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | newline inside (base64 -w)  | data:image/png;base64,iVBORw0KGgoAAAANSUhEUg\nAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | CRLF inside                 | data:image/png;base64,iVBORw0KGgoAAAANSUhEUg\\r\nAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | tab inside                  | data:image/png;base64,iVBORw0KGgoAAAANSUhEUg\\tAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg== |
      | empty payload               | data:image/png;base64, |

  # RFC 4648 §3.3: padding only at the very end. A long payload is no exception, wherever the
  # padding sits (at the power-of-two offsets where a decoder working in slices would cut).
  Scenario Outline: Padding inside a long payload is image_base64_invalid (after <at> KiB of 400)
    Given the user message carries a PNG data URI of 400 KiB with padding ending its first <at> KiB
    When I send a chat request
    Then the response is the error "image_base64_invalid"
    And the error param is "/messages/0/content/1/image_url/url"

    Examples:
      | at  |
      | 64  |
      | 128 |
      | 256 |
      | 320 |

  Scenario Outline: A remote URL is image_url_not_supported on a model that cannot take URLs
    Given the user message carries the image URL "<url>"
    When I send a chat request
    Then the response is the error "image_url_not_supported"
    And the error param is "/messages/0/content/1/image_url/url"

    Examples:
      | url                                  |
      | http://example.com/cat.png           |
      | https://example.com/cat.jpg          |
      | HTTPS://EXAMPLE.COM/CAT.JPG          |

  @needs-config
  Scenario: A remote URL is accepted by a model whose accepts_image_url is true
    Given I use the "vision_url" model
    And the user message carries the image URL "https://example.com/cat.jpg"
    When I send a chat request
    Then the response status is 200

  Scenario: The param points at the offending image, not the first one
    Given the user message carries the image URL "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
    And the user message carries the image URL "data:image/png;base64,abc=d"
    When I send a chat request
    Then the response is the error "image_base64_invalid"
    And the error param is "/messages/0/content/2/image_url/url"

  @needs-mock
  Scenario: A rejected image never reaches the upstream
    Given the user message carries the image URL "data:image/bmp;base64,Qk0="
    When I send a chat request
    Then the response is the error "image_decode_error"
    And the upstream received 0 requests
