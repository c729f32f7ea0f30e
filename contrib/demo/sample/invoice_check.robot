*** Settings ***
Documentation     发票校验 (invoice check): the sample app of `rpahub demo`.
...               It reads a small batch of invoices and checks each amount against its order.

*** Variables ***
${region}         四川
${batch}          3

*** Tasks ***
Check Invoices
    Log    Region ${region}: checking ${batch} invoices
    FOR    ${i}    IN RANGE    1    ${batch} + 1
        ${amount}=    Evaluate    ${i} * 1250.5
        Log    Invoice INV-${i}: amount ${amount} matches order PO-${i}
    END
    Log    All ${batch} invoices of ${region} are consistent
