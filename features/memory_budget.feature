@memory_budget @needs-tight-memory @dgx
Feature: Request bodies are held within MAX_BODY_MEMORY_BYTES, parsed trees included
  A body under MAX_BODY_BYTES can still need many times its size once parsed: every JSON
  member becomes a map entry with its own key allocation, so a megabyte of tiny members is a
  tree of many megabytes. The gateway bounds the memory all bodies in flight hold together,
  raw and parsed (MAX_BODY_MEMORY_BYTES, README "Bounds"), and refuses a body that could never
  fit as body_too_large (413: the caller must send less), naming the bound, instead of building
  the tree. These scenarios run against the embedded gateway configured with a budget of
  4 MiB (4194304 bytes, four times its MAX_BODY_BYTES of 1 MiB), one at a time, so that no
  other body holds any of it.

  Background:
    Given I authenticate with the "primary" token

  Scenario: A body of plain text just under MAX_BODY_BYTES fits a budget four times that size
    When I send a chat request padded to 1000000 bytes
    Then the response status is 200

  # About 180 KB of JSON; parsed, some 2 MB (16,000 map entries with their keys): within 4 MiB.
  Scenario: A body of 16,000 small members fits the budget
    Given the request field "/response_format" carries 16000 extra members
    When I send a chat request
    Then the response status is 200

  # About 990 KB of JSON, under MAX_BODY_BYTES: 90,000 map entries, each a key allocation and
  # a slot in a map node, well over 4 MiB once parsed.
  Scenario: A body under MAX_BODY_BYTES whose parsed tree cannot fit the budget is body_too_large
    Given the request field "/response_format" carries 90000 extra members
    When I send a chat request
    Then the response is the error "body_too_large"
    And the response status is 413
    And the error message contains "MAX_BODY_MEMORY_BYTES (4194304 bytes)"

  Scenario: After a refused body the budget is whole again
    Given the request field "/response_format" carries 90000 extra members
    When I send a chat request
    Then the response is the error "body_too_large"
    Given the request field "/response_format" is '{"type": "text"}'
    When I send a chat request padded to 1000000 bytes
    Then the response status is 200
