using System.Buffers;
using System.Text;

namespace KtConnect.Engine.Kube;

/// <summary>
/// The receive side of one port-forward WebSocket (v4.channel.k8s.io, one port): every message is
/// <c>[channel][payload]</c>; channel 0 is data, channel 1 is errors. The first two payload bytes of each channel
/// are the port as uint16 little-endian and are stripped. Error text is collected until its message ends.
/// Feed it message pieces as they are received; it never allocates per piece.
/// </summary>
public sealed class PortForwardDemuxer
{
    public const byte DataChannel = 0;
    public const byte ErrorChannel = 1;
    private const int MaxErrorBytes = 64 * 1024;

    private readonly int _expectedPort;
    private readonly ArrayBufferWriter<byte> _error = new(256);
    private int _channel = -1;
    private int _dataPrefixSeen;
    private int _errorPrefixSeen;
    private int _dataPort;
    private int _errorPort;

    public PortForwardDemuxer(int expectedPort) => _expectedPort = expectedPort;

    /// <summary>The port announced on the data channel, once its two bytes have arrived.</summary>
    public int? DataPort => _dataPrefixSeen == 2 ? _dataPort : null;

    /// <summary>The port announced on the error channel, once its two bytes have arrived.</summary>
    public int? ErrorPort => _errorPrefixSeen == 2 ? _errorPort : null;

    /// <summary>
    /// True inside a data-channel message whose port prefix has been stripped: the rest of that message is the pod's
    /// bytes as they are, so a reader may receive it straight into its own buffer (and report it with
    /// <see cref="Process"/>, which then returns the whole piece).
    /// </summary>
    public bool InDataPayload => _channel == DataChannel && _dataPrefixSeen == 2;

    /// <summary>The error channel's text once a non-empty error message has ended, else null.</summary>
    public string? Error { get; private set; }

    /// <summary>
    /// Processes one received piece of a message. <paramref name="messageStart"/> says the piece begins a message
    /// (its first byte is the channel). Returns where the data-channel bytes are inside <paramref name="piece"/>.
    /// </summary>
    public (int Offset, int Length) Process(ReadOnlySpan<byte> piece, bool messageStart, bool messageEnd)
    {
        var offset = 0;
        if (messageStart)
        {
            if (piece.Length == 0)
            {
                // An empty message has no channel byte; the server never sends one, skip it like the server does.
                return (0, 0);
            }
            _channel = piece[0];
            offset = 1;
        }
        var result = (0, 0);
        switch (_channel)
        {
            case DataChannel:
                while (_dataPrefixSeen < 2 && offset < piece.Length)
                {
                    _dataPort |= piece[offset++] << (8 * _dataPrefixSeen);
                    _dataPrefixSeen++;
                    if (_dataPrefixSeen == 2) CheckPort(_dataPort);
                }
                result = (offset, piece.Length - offset);
                break;
            case ErrorChannel:
                while (_errorPrefixSeen < 2 && offset < piece.Length)
                {
                    _errorPort |= piece[offset++] << (8 * _errorPrefixSeen);
                    _errorPrefixSeen++;
                    if (_errorPrefixSeen == 2) CheckPort(_errorPort);
                }
                var text = piece[offset..];
                var room = MaxErrorBytes - _error.WrittenCount;
                if (room > 0) _error.Write(text[..Math.Min(room, text.Length)]);
                if (messageEnd && _error.WrittenCount > 0 && Error is null)
                    Error = Encoding.UTF8.GetString(_error.WrittenSpan).TrimEnd();
                break;
            default:
                // Frames for channels we did not ask for are dropped, as the server does.
                break;
        }
        if (messageEnd) _channel = -1;
        return result;
    }

    private void CheckPort(int port)
    {
        if (_expectedPort > 0 && port != _expectedPort)
            throw new KubeProtocolException("KubePortForwardProtocol",
                $"The port-forward stream announced port {port} where {_expectedPort} was requested.");
    }
}
