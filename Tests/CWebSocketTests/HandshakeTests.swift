// HandshakeTests.swift — SHA-1, base64 and the opening-handshake helpers (RFC 6455 §4.2).
import CWebSocket
import Testing

/// SHA-1 of `bytes` through the C engine, as lowercase hex.
private func sha1Hex(_ bytes: [UInt8]) -> String {
    var digest = [UInt8](repeating: 0, count: 20)
    bytes.withUnsafeBytes { raw in
        digest.withUnsafeMutableBufferPointer { out in
            cws_sha1(raw.baseAddress, raw.count, out.baseAddress)
        }
    }
    return hex(digest)
}

private func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var s = ""
    for b in bytes {
        s.append(digits[Int(b >> 4)])
        s.append(digits[Int(b & 15)])
    }
    return s
}

private func base64(_ bytes: [UInt8]) -> String {
    var out = [UInt8](repeating: 0xEE, count: 4 * ((bytes.count + 2) / 3) + 4) // 4 guard bytes
    let n = bytes.withUnsafeBytes { raw in
        out.withUnsafeMutableBytes { o in
            cws_base64_encode(raw.baseAddress, raw.count, o.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
    }
    #expect(out[n...].allSatisfy { $0 == 0xEE }, "wrote past the returned length")
    return String(decoding: out[..<n], as: UTF8.self)
}

private func keyIsValid(_ key: String) -> Bool {
    let bytes = Array(key.utf8)
    return bytes.withUnsafeBytes { cws_handshake_key_is_valid($0.baseAddress, $0.count) }
}

/// Returns the status and, on CWS_OK, the 28-character accept value.
private func accept(_ key: String) -> (Int32, String) {
    let bytes = Array(key.utf8)
    var out = [UInt8](repeating: 0xEE, count: Int(CWS_ACCEPT_LENGTH) + 4)
    let status = bytes.withUnsafeBytes { k in
        out.withUnsafeMutableBytes { o in
            cws_handshake_accept(k.baseAddress, k.count, o.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
    }
    #expect(out[Int(CWS_ACCEPT_LENGTH)...].allSatisfy { $0 == 0xEE }, "wrote past CWS_ACCEPT_LENGTH")
    return (status, String(decoding: out[..<Int(CWS_ACCEPT_LENGTH)], as: UTF8.self))
}

/// SHA-1 of the bytes (i * 7 + 3) & 0xFF for i in 0..<n, for n = 0...200 (row n). This walks every
/// padding case of FIPS 180-4 §5.1.1: tails of 55 (0x80 and the length fit), 56-63 (the length
/// needs an extra block) and 64 (a full block, then a padding-only block) bytes mod 64.
/// Generated once with Python's hashlib:
///   python3 -c 'import hashlib
///   for n in range(201): print(hashlib.sha1(bytes((i*7+3)&255 for i in range(n))).hexdigest())'
private let sha1PatternTable: [String] = [
        "da39a3ee5e6b4b0d3255bfef95601890afd80709", // 0
        "9842926af7ca0a8cca12604f945414f07b01e13d", // 1
        "1f5ae6b976eaa448d6756c593ceb816ac8799ef1", // 2
        "4201de9f98cb0a9b8cf52398be7802b55d45266a", // 3
        "a9ca94e2a9be52cdcef145facf2bad04e553cb0b", // 4
        "941f194daa0adbdf8582dbf3691a6288329d2be6", // 5
        "984329883856c39f7dd78b88bcfb49eefc9be989", // 6
        "8f61e051db8f5bfa67d8eff0c40cf868f68e70bb", // 7
        "cef03cc4db41ecf2c7956e8b06dc6b0b8015f260", // 8
        "6cad7098fc6c42a32b5fe6536f157ff570772cd0", // 9
        "a00e488320a5f5536afc79a976ec22cf7aebbd97", // 10
        "0a3a1e6ce197c09607b8ddc9637dcaa223459182", // 11
        "74c2e2bfd179cc0901f88ca7b8bed52ebcd7d849", // 12
        "5b656bff036821f5174daba9580c139a6d74da15", // 13
        "0b32b3246891c1ce11d68e4b5e803490a7cd1b63", // 14
        "b02b80eaa1a78b076120457b296be0d347eeb194", // 15
        "3bbec6217ac9bf7c9c4642b1bdeb3ae68d99f787", // 16
        "2dbde31cfe98dd4a93eb056f157f8cabb01db443", // 17
        "5cd1599bbf20aa54712f37bd18ae4b464c59d299", // 18
        "90226ee11311d80cfae27605808403960856e50d", // 19
        "57ab1094cc2a57d9f64818d2eb92750aab1bf177", // 20
        "565cce1992fa0e88bf04e798764a6d2d26ea1dc3", // 21
        "b7f16efc74e3224c94bc344c6bafabb7e11d977a", // 22
        "fa9329dda1c904fb2c9ef99cdd87561526d80913", // 23
        "1aae7a798319ed16a198e92401e7eed36cd1a51b", // 24
        "9ade5333be4a9674e7ac5b12ddac8240f7783da2", // 25
        "6d3ce948a92cfb30d8c9da8af8a088154549e0ea", // 26
        "78440d05a24e2b53d2ee8a66c6d9507fc42cc431", // 27
        "c9a77289303864dc3e15adf071745fef286a70b2", // 28
        "96fb3a3053d47fd59e775fd21c27c3835f164188", // 29
        "a97984db177660175eea1dbe18dbc376808b5ee3", // 30
        "d21a51503aa50e23029493030a1d0704a84cb2ea", // 31
        "64b5168088b6692cfd749ab0b699a8b5b225189b", // 32
        "66f198bd988723981464f3e589667631c29d174d", // 33
        "d828aab123a8df09bb66c6ff5d46e444e52225d8", // 34
        "20d1062373e60ddb02daf0a2bb9dc4893a5a3482", // 35
        "e84e44766b5f4cb28f9005a9bcc61f0414f7723f", // 36
        "66787c668baba43a4574ca4db54cbb65f78fd9d5", // 37
        "b82977dee0782cb1c424be3ca1b6fefa60ac600c", // 38
        "9ac81eef4e53dfd5df78dc615f4685c18957b291", // 39
        "211f8d2930f827e5c7a66cd81d79c1d2df12ea6b", // 40
        "07db78a9a0bf346e34553dedd45854cb36df8185", // 41
        "bc152a0c16257c31d861e4de5788878b02e18850", // 42
        "42ffa53d886bdf8abb72fe633ec6bb176fca1047", // 43
        "90963fb5f385b944c30a85cedc11f0c775314a29", // 44
        "7e5ad6079ab50b53bd400c0bed369f5cca092881", // 45
        "d23cd18dc6bb13fc18b37318035169d7daf3ecda", // 46
        "5e3cf47f3d208b1dceb06f8a37e58236e5ad2fc0", // 47
        "9aa97c403db44000cf9601a20a6e0d4fe4e94a01", // 48
        "f873554e96c4fd00c3b3446c74005afe81d85b22", // 49
        "996be45cd0e8a24b6eb052c5b174bad6c2151f03", // 50
        "3e0ea15235a8dd08343c0ecbb2f7a3974f521857", // 51
        "937beca28580f3ff31d4ef88653801349179ac7a", // 52
        "f163c6b4b97324d118ed451c94625aef0d0a6fb6", // 53
        "0617d0e2db51b03d5d09c217b3fe0643ed6d152f", // 54
        "ddf57317ef34bfee3b6df83d359098930eb278bc", // 55
        "a0d492bb0fc889d0eca3bc137066ab6f4f74f369", // 56
        "11a02dcf95859677a62e75024067c22b165d890f", // 57
        "3d6024b3f7b1c01a5c62497022ea6e33b89d2cf3", // 58
        "5850f256241b06d25bc20b9dc85d7944ce96fa1a", // 59
        "4a72dc48088734d6ee17cccbb158de29744e9733", // 60
        "92b2db0c849997e88b21b8a509eecaa46f00c6b8", // 61
        "363c4d8b28918eacfb4b945bafd31cb62997a5cd", // 62
        "c55856749bef509bdfe6bfebfc7bf4e793e82132", // 63
        "bede92be29c3874e1b54ddc77988d606fc857a8e", // 64
        "b05a80522b053d6dc7e0a517d0e70212c7dad11f", // 65
        "13e53bec6f6ee5a157a4f62ad14f702bf9f6d167", // 66
        "8d39d341da28ed21be3ca08ec2cfb6c4a4be99ed", // 67
        "3efec55489106fcde5552290bb4bc2bcda30f9ba", // 68
        "831e22c83fef344e627b1d20181d77d0984fafea", // 69
        "3e7e19ea8f559bd1f5c97e46f0ae082c4bcd6244", // 70
        "b4d320ff238a99c0963778c340387bc1c61f5cd7", // 71
        "191cf09722d8a449820c9c66b122b8434a68dcea", // 72
        "c2234319c0056fe3d74053e1ce14faf00dee5df4", // 73
        "2e96fc5182863f989f79ed28c46558295030d50d", // 74
        "0afbbbe6e731ab70338bf972766211eacffd0e79", // 75
        "4486860ad2702b492f17e07e43d99474964a6348", // 76
        "7ad89da645724916b0e70f8db3fb48382d970867", // 77
        "2a013aba1ee3deceddcdc2ed426f3bc26be4f94b", // 78
        "6a6dfd5130d56d92374a53d0c03356da772a10aa", // 79
        "de25ce79b8cf13016c12d081f399f9b427af4cbb", // 80
        "c73933e543f4daeceb08b990f257a61e6139f039", // 81
        "a0e9c80c67a1cc955341e50b6006b0690eaa8807", // 82
        "22d464b043d3c8eb9025cb7497e4eacfe0aadb96", // 83
        "1f2c174a3687d3b1118a138779f254273fc78f6c", // 84
        "bd7be1e0cdb0a911bae7eef171d31bafb47435e8", // 85
        "56e1fe537ae2c59e52eeee83b5efa9185b15dc5c", // 86
        "2e114dfa3f54bf19f2d132aa8ec7521ef722bd35", // 87
        "b0c561b691887c08a09879869f578afc6248b36a", // 88
        "2b5f3e1bfd79e003926a6d743cb85c7543fed63c", // 89
        "08e751b39f177186ac60873de02326e05b785eb6", // 90
        "94afe1d3144f0288e2f3e86a2c831d6e5b1fd365", // 91
        "2fefc0ee2f4f40f5946efe1ddcdeefd137c1c36d", // 92
        "9410400eed4b3c11fc722cdd6211d33b4043e6cb", // 93
        "cd7e7ea8dce332643b93d8899454c5e2ee5434da", // 94
        "9e7bd6ac0eb591be8919e506dbf0725cb84a432e", // 95
        "dec7fa16b8b6ec5a3515e4a746d0d66c2bdb44e1", // 96
        "3a4f06a74c1e38308a0a8af4ecd22ccfc6d12948", // 97
        "5c546fb0ff4593361b19b8f5eb2a9d36cf790911", // 98
        "cf19877413ac8cb6c116536f3b8ea85523e6303e", // 99
        "be7fd41586f415665d261af19613a4ba6f4346bb", // 100
        "2ae428c5f5dfaff2dd18ce373895c4b0f63e71a4", // 101
        "8b258ff38e0bec341461fe7a389c58e94a6902ff", // 102
        "6c31104718ea0d8a5dddb0999465f4af5b5bbf91", // 103
        "dfaa234fa35d3d5fc1b197a297e1cc85c4a7a474", // 104
        "8f9a47272286be5b250b61a5b15f90b85caf6ac3", // 105
        "bfd965ad51f29ca661470907f62394cd17b0c4e9", // 106
        "7f5936f7be3cf34d607cfce675b831d27af2aa68", // 107
        "23ecf83dabecb06b2b768dd0cd86ce1210e9e8e1", // 108
        "5e48479854b5991bf840e23f7bbe55535e67a23c", // 109
        "37e815835e4c8b9642d3b628de7051502befa59a", // 110
        "4a01b1272627e5be00f57bc3c3029c23a452e629", // 111
        "54c08c2a0ed21de25e3d8606c3929454eb1d3f8b", // 112
        "9f359093c0426170a6d53fdfb89679b592d8ebac", // 113
        "02a464094db5da39cf309cd80cf96dd18465599d", // 114
        "fe35da50128fed6999d312c58d79f2324ecba58d", // 115
        "11ee9de3ca106edcfcecc00f160d97e6b0cc33f7", // 116
        "90b79e0bc3eb8d92af29b371e44e16d91a98cfa1", // 117
        "55bfbde27c9acb13670a70e765a687b2da3435fc", // 118
        "504e27376a6e0f0dba8295b85cb25dc4dfa17d23", // 119
        "82134b02fb3f702491be9bed581eeab59334acb2", // 120
        "f004a54c50aa3705ccc2f03f21016ca6a25755cb", // 121
        "cfca83c0711fd2164e886c60ec33b69a7e9a68f0", // 122
        "4753b07e7c0e0d418bed1370adca81d099a41e88", // 123
        "3132eb444ed5ea62a86fb0a5a1159550e16ee30e", // 124
        "a46f230aaf987f4db2bb3501116392e684d29b76", // 125
        "35f63e21348461ef967e9f37207a56e62701218e", // 126
        "34d5e582029e9b9b85b2febe31da3db7cdabaaea", // 127
        "a09133e6730ffe899efb70204cb5646cd5dc24ee", // 128
        "808aea332ce367541d37adae7f94e59c5c1a934e", // 129
        "6e95f38fbdd38454ab4370ca87d628b526515950", // 130
        "cc643b473e831c4bebb157527f69f90c50de211e", // 131
        "0bfa76887b8b1713cc2a785d93cb69b384c11c29", // 132
        "3650388bc9ee9a692b470d0d54cdc4c9da57c3a4", // 133
        "a49a1a7e19ba3e441e826cf338e03757c2850d6d", // 134
        "cdc7e923d8db0f586dd02a0b105307d1fe6b6223", // 135
        "72e7808c7305c5af1aadee254f089323b6e5e255", // 136
        "aaeddd302a34f506a0c4b5f8c7fe014bad383dbf", // 137
        "c26dc50fb86ef91cecc311ed6197ebea82e0c456", // 138
        "3ec0106d420c025732ccb579e0e3b1060f7f28c4", // 139
        "ff43f1604c162b65dab6eaac416b3412107d8301", // 140
        "6c44d95dd5e3eebc50456972f245dbae3939b2c9", // 141
        "aed422603caadcc8e627119ebf60cfda039200f2", // 142
        "fb077b92253496d2d06011bcab024ea498053b71", // 143
        "090dc8610c761fe255c9da58b2302f2bb76c83b6", // 144
        "96d93ff8165d9e9ba8bcdbce28078c28cd65ea87", // 145
        "a198c19e6b6e176f424f0d03038b3bad39eecaec", // 146
        "c7a824653e83eb6f9a4233e87e123e3b46cce2c5", // 147
        "d5c606a13d6226419302bd474f8a9f698dcbdb0a", // 148
        "88b1f447d0b8c1c764e82b722a175085a908b238", // 149
        "76044d030d3b6ebafc31c2693ff80348197b2333", // 150
        "27a9eef2c6b98625ff6876fd7ee8ba63978494d2", // 151
        "1fddaa4e8739ae20ac34b552fa53d821f6de0751", // 152
        "c9c18b19d69f1cdb5e6cf965cd974c31a7443d0f", // 153
        "5a6582fe462ad1097a17ecf1060aac537e1e950f", // 154
        "e97e08055983a13acf587ed3f9cfb3c6333efadf", // 155
        "da672dcc282895fea2629bb53a2d1842f60146b8", // 156
        "12abc92c004d20dcd25a8beb6f2921008ae48561", // 157
        "d55930264e6f15b1f01e4ab70b5e21f9d1a981ec", // 158
        "cc63ed0544dae0333ea641457fa27bb90d5ef4df", // 159
        "da64ef17126b99bd27796ad2cc7e48bd54c20e19", // 160
        "0706eb16cf0c04fc979199d250ea7aa243ca70e5", // 161
        "4c8f030d5da0a104d154e086145c64360200790b", // 162
        "c3a843482da185d1960e4660c724c21acc8c3834", // 163
        "7a2983032a4fe84948847a064052cdfee8700a85", // 164
        "d7839fa8e26208667e340a96d9d64bc74fbfa4b4", // 165
        "de7a1ca800a6db40ca666dfdbc991c2c9a18e43d", // 166
        "8f0a6d5dad170f2644931c27b7bf06106ec58cd4", // 167
        "e7211c9f0e22557514bb2254f97cf04ea5090aa1", // 168
        "480e4eec7e85ea1147a4c1ba3a0255b5f2d184f1", // 169
        "7ea2af59e07eb2ca83395639c6fc1683e860109a", // 170
        "732bb7a2b9b1cfe6610a1d5651523acf32cdb0a0", // 171
        "964fbba400b93c134f8d317747214d332272a0ee", // 172
        "5bb643df2eab6b060e21220deb5a74d51ed4cc50", // 173
        "e7624054b948cea81c8c6ef050c944278e1c0a84", // 174
        "c8ed47ea45ddf22c5a28c30e57b1048f86c41d6d", // 175
        "68d3daac3e5c51ad853ab2ab44c734a56969eeb2", // 176
        "18639f1946939f3c6d341a4005e451b864aebd24", // 177
        "8fde9ca1c0ecb2431cc28621b3a5d4f4bd9af2f2", // 178
        "55639820b5fcd60c7bec3b9d11276600650a2b34", // 179
        "c837f8f279db713f159004257b5acddd5d865404", // 180
        "0e563eda04add2df974a48d54beb70b01c322250", // 181
        "67ef255221b67c32b0bccccd5c1c8daebab9304d", // 182
        "4efb0f6868187c46710adedf4854bf058f80884e", // 183
        "8b065304a2f4298ac4c002c99aefff091e7404c3", // 184
        "66a75f97e25bfd1a8d87d02ac96f00d75e938417", // 185
        "de766852165f2da6eee1cbaf192be30e826bd594", // 186
        "7bae2c36a25a388599e0b6d4c86a7ef8f4370e31", // 187
        "6d444326853c0075b2d7371e9de9f7bf233392c8", // 188
        "59f094407ab4ca21f7958c47fe9d80c7065abfb5", // 189
        "ebbe181bfcff6cd8364e2f62f5c98d78e7de9906", // 190
        "49a4616be00bceb6192664c19a6a06dccd8bfd3d", // 191
        "d4a590a7cfcb57efd1733aac508a22d4fea1b6e9", // 192
        "4ae37a089bdbe2cb6b0138d66a182d0ec5c00897", // 193
        "a7055cd5c99e5093fc8feb1993f40b591514c108", // 194
        "0e7f599e3ed1601d069b92aa4a6a71c8b2ef5be8", // 195
        "351e9350c6cc644deaabc3e1fc811ca728048b74", // 196
        "3150f1ed81f17065f8bc01122c0985fb0b297946", // 197
        "6af8b306d541e59e792349703e9cdda390ae0a6b", // 198
        "4d36b7150aedb6193d7009bd722b2c259f2a9f23", // 199
        "892b673ca3c696ab13ab8aab3cf3abfbc3aaeb3b", // 200
]

@Suite struct HandshakeTests {
    /// RFC 6455 §1.3: the worked example of the accept computation.
    @Test func rfc6455Example() {
        let (status, value) = accept("dGhlIHNhbXBsZSBub25jZQ==")
        #expect(status == CWS_OK.rawValue)
        #expect(value == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    /// More keys, accept values from Python's hashlib + base64
    /// (base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())).
    @Test(arguments: [
        ("wDqumtseNBJdhkihL6PW7w==", "0FFP+2nmNIf/h+4BP36k9uzrYGk="),
        ("AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI="),
        ("/////////////////////w==", "XXpj4jYzLM2yUE0C7TIgMwTQh2g="),
    ])
    func acceptValues(key: String, expected: String) {
        let (status, value) = accept(key)
        #expect(status == CWS_OK.rawValue)
        #expect(value == expected)
    }

    /// FIPS 180-4 / FIPS 180-2 appendix A test vectors.
    @Test func fipsVectors() {
        #expect(sha1Hex([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(sha1Hex(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        let m448 = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(m448.count == 56) // 448 bits
        #expect(sha1Hex(m448) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(sha1Hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
            == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func sha1EveryLength0To200() {
        #expect(sha1PatternTable.count == 201)
        for n in 0...200 {
            let input = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
            #expect(sha1Hex(input) == sha1PatternTable[n], "length \(n)")
        }
    }

    /// NULL data with length 0 is allowed (cws.h conventions).
    @Test func sha1NullEmpty() {
        var digest = [UInt8](repeating: 0, count: 20)
        digest.withUnsafeMutableBufferPointer { cws_sha1(nil, 0, $0.baseAddress) }
        #expect(hex(digest) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }

    /// RFC 4648 §10 test vectors.
    @Test(arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ])
    func base64Rfc4648(input: String, expected: String) {
        #expect(base64(Array(input.utf8)) == expected)
    }

    /// The characters at both ends of the alphabet (62 '+', 63 '/') and high bytes.
    @Test func base64AlphabetEnds() {
        #expect(base64([0xFB, 0xFF, 0xBF]) == "+/+/")
        #expect(base64([0xFF]) == "/w==")
        #expect(base64([0x00, 0x00, 0x00]) == "AAAA")
    }

    @Test(arguments: [
        "dGhlIHNhbXBsZSBub25jZQ==",
        "AAAAAAAAAAAAAAAAAAAAAA==",
        "/////////////////////w==",
        "+++++++++++++++++++++g==",
        "abcdefghijklmnopqrstuQ==",
        "0123456789+/012345678w==",
    ])
    func validKeys(key: String) {
        #expect(key.utf8.count == 24)
        #expect(keyIsValid(key))
    }

    @Test(arguments: [
        "",                            // empty
        "dGhlIHNhbXBsZSBub25jZQ=",     // 23
        "dGhlIHNhbXBsZSBub25jZQ===",   // 25
        "dGhlIHNhbXBsZSBub25jZQ",      // padding missing (22)
        "dGhlIHNhbXBsZSBub25jZQA=",    // one '=' only
        "dGhlIHNhbXBsZSBub25jZQAA",    // no padding at all, 24 chars
        "dGhlIHNhbXBsZSBub25jZ===",    // too much padding (15 bytes)
        "dGhlIHNhbXBsZSBub25jZR==",    // non-canonical: padding bits not zero
        "dGhlIHNhbXBsZSBub25jZB==",
        "dGhlIHNhbXBsZSBub25jZ/==",
        "dGhlIHNhbXBsZSBub25j Q==",    // space inside (24 chars)
        "dGhlIHNhbXBs\tZSBub25jZQ=",   // tab inside
        " dGhlIHNhbXBsZSBub25jZQ=",    // leading space (caller trims)
        "dGhlIHNhbXBsZSBub25jZQ= ",
        "dGhlIHNhbXBsZSBub25jZQ==\r",  // 25 with CR
        "dGhlIHNhbXBsZSBub25j-Q==",    // base64url '-' is not the standard alphabet
        "dGhlIHNhbXBsZSBub25j_Q==",
        "dGhlIHNhbXBsZSBub2=jZQ==",    // '=' in the middle
        "dGhlIHNhbXBsZSBub25jZQ=A",
        "dGhlIHNhbXBsZSBub25jZQ\0=",   // NUL
    ])
    func invalidKeys(key: String) {
        #expect(!keyIsValid(key))
        let (status, _) = accept(key)
        #expect(status == CWS_ERR_INVALID_KEY.rawValue)
    }

    /// Every byte value at every position of a valid key: only alphabet characters keep it valid
    /// in positions 0-20, only A/Q/g/w at 21, only '=' at 22 and 23.
    @Test func everyByteAtEveryPosition() {
        let base = Array("dGhlIHNhbXBsZSBub25jZQ==".utf8)
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var mismatches = 0
        for pos in 0..<24 {
            for b in 0...255 {
                var key = base
                key[pos] = UInt8(b)
                let expected: Bool
                switch pos {
                case 0..<21: expected = alphabet.contains(UInt8(b))
                case 21: expected = Set("AQgw".utf8).contains(UInt8(b))
                default: expected = b == UInt8(ascii: "=")
                }
                let got = key.withUnsafeBytes { cws_handshake_key_is_valid($0.baseAddress, $0.count) }
                if got != expected { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
    }

    /// A NULL key is invalid, not a crash.
    @Test func nullKey() {
        #expect(!cws_handshake_key_is_valid(nil, 24))
        var out = [CChar](repeating: 0, count: Int(CWS_ACCEPT_LENGTH))
        let status = out.withUnsafeMutableBufferPointer { cws_handshake_accept(nil, 24, $0.baseAddress) }
        #expect(status == CWS_ERR_INVALID_KEY.rawValue)
    }
}
