@conversations @dgx
Feature: Stored conversations on /c1
  POST /c1/chat/completions works like /v1 plus a required "user_id" and an optional
  "conversation_id": the history is loaded from and saved to the gateway's store and the response
  carries "conversation_id" (SPEC §2). GET /c1/conversations?user_id= lists the user's conversations,
  GET /c1/conversations/{id}?user_id= returns one with its messages, DELETE answers 204. Everything
  is scoped to the tenant and the user: a conversation never stored, deleted, or owned by another
  user_id or tenant is conversation_not_found (404) (SPEC §3 catalog). A missing user_id is
  missing_field ("/user_id" in a body, "query.user_id" in a query); hostile or huge ids get a clear
  catalog 4xx; a failing store is storage_error (500).

  User names in these scenarios are local to the scenario.

  Background:
    Given I authenticate with the "primary" token

  Rule: Conversations are stored, continued in order, listed and deleted

    @needs-mock
    Scenario: Starting a conversation returns its id and stores both turns
      Given the upstream answers with the text "Noted: kumquat."
      When I start a conversation as user "alice" saying "Remember the word kumquat."
      Then the response status is 200
      And the body has the field "/conversation_id"
      And the body matches the schema "chat_completion.json"
      When I get the conversation as user "alice"
      Then the response status is 200
      And the conversation has 2 messages
      And conversation message 1 has role "user" and contains "Remember the word kumquat."
      And conversation message 2 has role "assistant" and contains "Noted: kumquat."

    @needs-mock
    Scenario: Continuing a conversation sends the stored history upstream and keeps the order
      Given the upstream answers with the text "Noted: kumquat."
      And the upstream answers with the text "The word was kumquat."
      When I start a conversation as user "alice" saying "Remember the word kumquat."
      And I continue the conversation as user "alice" saying "Which word did I ask you to remember?"
      Then the response status is 200
      And the body field "/choices/0/message/content" is "The word was kumquat."
      And the last upstream request contains the text "Remember the word kumquat."
      And the last upstream request contains the text "Noted: kumquat."
      When I get the conversation as user "alice"
      Then the conversation has 4 messages
      And conversation message 1 has role "user" and contains "Remember the word kumquat."
      And conversation message 2 has role "assistant" and contains "Noted: kumquat."
      And conversation message 3 has role "user" and contains "Which word did I ask you to remember?"
      And conversation message 4 has role "assistant" and contains "The word was kumquat."

    # A streamed turn is saved like any other (SPEC §2: the history is saved to the store):
    # once its stream has ended with [DONE], the conversation holds the question and the
    # streamed answer.
    @needs-mock
    Scenario: A streamed conversation turn is stored once its stream completes
      Given the upstream streams "Noted: quince." in 3 chunks 0 ms apart
      When I start a streamed conversation as user "alice" saying "Remember the word quince."
      Then the response status is 200
      And the stream ends with the DONE marker
      And the header "x-conversation-id" is present
      When I get the conversation as user "alice"
      Then the response status is 200
      And the conversation has 2 messages
      And conversation message 1 has role "user" and contains "Remember the word quince."
      And conversation message 2 has role "assistant" and contains "Noted: quince."

    Scenario: Listing shows only the user's own conversations
      When I start a conversation as user "bob" saying "bob's only conversation"
      And I start a conversation as user "alice" saying "first topic"
      And I start a conversation as user "alice" saying "second topic"
      And I list the conversations of user "alice"
      Then the response status is 200
      And the conversation list has 2 entries

    Scenario: Deleting answers 204 and the conversation is gone everywhere
      When I start a conversation as user "alice" saying "short-lived"
      And I delete the conversation as user "alice"
      Then the response status is 204
      When I get the conversation as user "alice"
      Then the response is the error "conversation_not_found"
      When I delete the conversation as user "alice"
      Then the response is the error "conversation_not_found"
      When I continue the conversation as user "alice" saying "are you still there?"
      Then the response is the error "conversation_not_found"
      When I list the conversations of user "alice"
      Then the conversation list has 0 entries

  Rule: Conversations are private to their user and tenant

    Scenario Outline: Another user cannot <action> your conversation
      When I start a conversation as user "alice" saying "private to alice"
      And I <action> the conversation as user "mallory"
      Then the response is the error "conversation_not_found"
      When I get the conversation as user "alice"
      Then the response status is 200
      And the conversation has 2 messages

      Examples:
        | action |
        | get    |
        | delete |

    Scenario: Another user cannot continue your conversation
      When I start a conversation as user "alice" saying "private to alice"
      And I continue the conversation as user "mallory" saying "let me in"
      Then the response is the error "conversation_not_found"
      When I get the conversation as user "alice"
      Then the conversation has 2 messages

    @needs-config
    Scenario: Another tenant cannot see your conversation, even with the same user_id
      When I start a conversation as user "alice" saying "private to the primary tenant"
      Given I authenticate with the "second tenant" token
      When I get the conversation as user "alice"
      Then the response is the error "conversation_not_found"
      When I continue the conversation as user "alice" saying "let me in"
      Then the response is the error "conversation_not_found"
      When I delete the conversation as user "alice"
      Then the response is the error "conversation_not_found"
      When I list the conversations of user "alice"
      Then the conversation list has 0 entries

    Scenario: A conversation id that was never stored is conversation_not_found
      Given the request field "/user_id" is '"alice"'
      And the request field "/conversation_id" is '"conv-never-stored-00000000"'
      When I send a chat request to "/c1/chat/completions"
      Then the response is the error "conversation_not_found"

  Rule: Bad identifiers get a clear catalog 4xx

    Scenario: A /c1 chat request without user_id is missing_field
      When I send a chat request to "/c1/chat/completions"
      Then the response is the error "missing_field"
      And the error param is "/user_id"

    Scenario: A /c1 chat request with a non-string user_id is invalid_field
      Given the request field "/user_id" is "42"
      When I send a chat request to "/c1/chat/completions"
      Then the response is the error "invalid_field"
      And the error param is "/user_id"

    Scenario Outline: Listing or reading without user_id is missing_field on the query
      When I GET "<path>"
      Then the response is the error "missing_field"
      And the error param is "query.user_id"

      Examples:
        | path                            |
        | /c1/conversations               |
        | /c1/conversations/conv-00000001 |

    Scenario Outline: A hostile conversation id gets a clear client error (<action> "<id>")
      When I <action> the conversation "<id>" as user "alice"
      Then the response is a 4xx catalog error

      Examples:
        | action | id                               |
        | get    | ../../etc/passwd                 |
        | get    | ' OR '1'='1                      |
        | get    | 1; DROP TABLE conversations; --  |
        | get    | <script>alert(1)</script>        |
        | get    | %00                              |
        | get    | ☃💥                              |
        | delete | ../../etc/passwd                 |
        | delete | ' OR '1'='1                      |

    Scenario Outline: A huge conversation id gets a clear client error (<action>)
      When I <action> a conversation whose id is 10000 characters long as user "alice"
      Then the response is a 4xx catalog error

      Examples:
        | action |
        | get    |
        | delete |

    # The paging cursor `after` is a conversation id too (the `last_id` of the previous page):
    # a hostile one is the caller's error like a hostile id in the path, not an empty page
    # that reads as "no more conversations".
    Scenario Outline: A hostile paging cursor gets a clear client error (<case>)
      When I GET "/c1/conversations?user_id=alice&after=<cursor>"
      Then the response is a 4xx catalog error

      Examples:
        | case           | cursor                    |
        | path traversal | ..%2F..%2Fetc%2Fpasswd    |
        | SQL            | %27%20OR%20%271%27%3D%271 |
        | markup         | %3Cscript%3E              |

  Rule: A failing store is a storage_error

    @needs-fault-injection
    Scenario: Saving to a failing store is storage_error
      Given the gateway's conversation store is failing
      When I start a conversation as user "alice" saying "this will not be saved"
      Then the response is the error "storage_error"

    @needs-fault-injection
    Scenario: Listing from a failing store is storage_error
      Given the gateway's conversation store is failing
      When I list the conversations of user "alice"
      Then the response is the error "storage_error"
